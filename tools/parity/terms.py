"""The terms the many-update comparison logs, under one name for both codes, and their log.

NumPy only (the torch side imports it). Each code's side maps its own metrics to these names in
the same units: the loss terms as each code's loss adds them, before their weights.
"""

import numpy as np

WORLD_MODEL = {  # name: twm-tf metric
    "decoder": "obs/recon",  # 0.5 x sum of squared errors per observation
    "entropy": "obs/entropy",  # H(q(z|o)) summed over the variables
    "consistency": "obs/consistency",
    "latent": "dyn/latent",  # cross-entropy of the next latent, summed over the variables
    "reward": "dyn/reward",  # reward NLL (with 0.5 ln 2 pi)
    "discount": "dyn/discount",  # discount NLL
}
ACTOR_CRITIC = {
    "critic_loss": "critic/loss",
    "actor_entropy": "actor/entropy",
    "imagined_return": "critic/return_mean",  # mean lambda-return of the imagined steps
    "imagined_reward": "imagination/reward_mean",
}
TWM_TF = {**WORLD_MODEL, **ACTOR_CRITIC}

# The original's metrics (WorldModel.optimize, ActorCritic.optimize) behind each term. Its units
# differ in three places, which `from_original` removes: dec_loss and critic_loss are Normal NLLs
# with the constant 0.5 ln(2 pi) (per pixel; per step, weighted), and reward_loss and
# discount_loss are multiplied by their coefficients beta1, beta2. z_ent and z_pred_ce sum over
# the variables as twm-tf's do. enc_prior_ce is the consistency cross-entropy, averaged over the
# steps the consistency mask keeps when that adapter is on (curves_orig.Adapters).
ORIGINAL = {
    "decoder": "dec_loss",  # -log N(o; o_hat, 1) summed over the pixels, per observation
    "entropy": "z_ent",
    "consistency": "enc_prior_ce",
    "latent": "z_pred_ce",  # needs the latent_loss adapter (the released code skips the term)
    "reward": "reward_loss",  # beta1 x reward NLL (with 0.5 ln 2 pi)
    "discount": "discount_loss",  # beta2 x discount NLL
    "critic_loss": "critic_loss",  # mean(w (0.5 (V - R)^2 + 0.5 ln 2 pi))
    "actor_entropy": "ent",  # mean(w H(pi))
    "imagined_return": "returns",  # mean lambda-return
    "imagined_reward": None,  # not reported: the mean of Dreamer.get_data's rewards
}
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def from_original(
    metrics: dict[str, float], coefs: dict[str, float], pixels: int = 0, weight_mean: float = 0.0
) -> dict[str, float]:
    """The terms present in the original's metrics (as floats), in twm-tf's units.

    Args:
      metrics: the original's metric names -> floats; "imagined_reward" may be added by the
        caller, the original does not report it.
      coefs: the original's config values obs_decoder_coef, dyn_z_coef, dyn_reward_coef,
        dyn_discount_coef.
      pixels: values per observation (frame_stack x 64 x 64), for the decoder's constant.
      weight_mean: mean of the imagined steps' weights, for the critic's constant.
    """
    scale = {
        "decoder": coefs["obs_decoder_coef"],
        "latent": coefs["dyn_z_coef"],
        "reward": coefs["dyn_reward_coef"],
        "discount": coefs["dyn_discount_coef"],
    }
    offset = {"decoder": _HALF_LOG_2PI * pixels, "critic_loss": _HALF_LOG_2PI * weight_mean}
    out = {}
    for name, key in ORIGINAL.items():
        key = key or name
        if key in metrics:
            out[name] = float(metrics[key]) / scale.get(name, 1.0) - offset.get(name, 0.0)
    return out


def from_twm_tf(metrics: dict) -> dict[str, float]:
    """The terms present in a twm-tf metrics dict, as floats."""
    return {name: float(metrics[key]) for name, key in TWM_TF.items() if key in metrics}


class Log:
    """Per-update terms of one run: wm/<term>, ac/<term>, heldout/<term> and heldout_step."""

    def __init__(self):
        self.series: dict[str, list[float]] = {}

    def add(self, prefix: str, terms: dict[str, float]) -> None:
        for name, value in terms.items():
            self.series.setdefault(f"{prefix}/{name}", []).append(value)

    def add_heldout(self, step: int, terms: dict[str, float]) -> None:
        self.add("heldout", terms)
        self.series.setdefault("heldout_step", []).append(step)

    def save(self, path: str) -> None:
        np.savez(path, **{name: np.asarray(values) for name, values in self.series.items()})

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

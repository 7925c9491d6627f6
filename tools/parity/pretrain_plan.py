"""The batches of the pretraining comparison, drawn once from one seed, and its term names.

NumPy only (the torch side imports it). Both codes pretrain from the same weights on the first
`prefill` steps of the recorded dataset (dataset.py), the small preset's prefill, in three phases:

    obs  VAE updates on single observations           [pretrain_obs_batch] steps each
    dyn  dynamics updates, the VAE frozen              [N] windows of l + 2 steps (as plan.py's)
    ac   critic on real returns, actor on entropy      [M] windows of H + 1 steps

An actor-critic window is what the original's `ActorCritic.optimize_pretrain` takes:

    step:      0      1      ...    H-1      H
    z:         z_0    z_1    ...    z_{H-1}  z_H     z_H only bootstraps the returns
    rewards:   r_0    r_1    ...    r_{H-1}          tanh, as both replay buffers store them
    dones:     d_0    d_1    ...    d_{H-1}          terminated or truncated

Update counts follow twm-tf's schedule (`twm_tf.schedule`): round(pretrain_samples x share /
batch elements), batch elements N l for the world model's phases and M H for the actor-critic.
The actor-critic share is a parameter: 0.1 is twm-tf's default, 0.7 the original as released
(`1 - obs_p + dyn_p`, an operator-precedence slip). Each phase draws from a stream of its own, so
the VAE and dynamics batches do not depend on the share, and the actor-critic batches of a smaller
share (or a smaller `budget_scale`) are the first ones of a larger: one run at 0.7 passes through
the whole run at 0.1.

Held out: the world-model windows of plan.py (the dataset's last HELDOUT_STEPS steps), and as many
actor-critic windows from there, each with the discounted return of the real rewards from each of
its first H steps on (RETURN_TAIL more steps at least, so the cut tail weighs < gamma^1000).
"""

import dataclasses
import types
from typing import NamedTuple

import numpy as np

from tools.parity import dataset as dataset_lib
from tools.parity import plan as plan_lib
from tools.parity import terms
from twm_tf import schedule
from twm_tf.dev import testdata

DEFAULT_AC_SHARE = 0.1  # twm-tf's config.pretrain_ac_fraction
RELEASED_AC_SHARE = 0.7  # the original: pretrain_budget * (1 - 0.6 + 0.3)
PREFILL_STEPS = 5_000  # the small preset's prefill_steps
RETURN_TAIL = 1_000  # real steps after each held-out actor-critic window, for its returns
PHASES = ("obs", "dyn", "ac")

# The logged terms, under one name for both codes, in twm-tf's units (terms.py's convention):
#   pre_<phase>/<term>   per update        end_<phase>/<term>   held out, after the phase
#   heldout_ac/<term>    held out, at each of `ac_eval_points` (heldout_ac_step)
PHASE_TERMS = {
    "obs": ("decoder", "entropy"),
    "dyn": ("latent", "reward", "discount"),
}
AC_TERMS = {  # name: (twm-tf metric, the original's metric of optimize_pretrain)
    "critic_loss": ("critic/loss", "critic_loss"),  # original: + 0.5 ln(2 pi) (unit weights)
    "actor_entropy": ("actor/entropy", "ent"),
    "value_mean": ("critic/value_mean", "critic"),
    "return_mean": ("critic/return_mean", "returns"),  # mean lambda-return target
    "abs_error": ("critic/abs_error", "critic_mae"),  # mean |V - lambda-return|
}
# Held out, the critic also meets the real discounted returns (Monte-Carlo, RETURN_TAIL).
MC_TERMS = ("mc_abs_error", "mc_sq_error")  # mean |V - G|, mean 0.5 (V - G)^2
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


class Updates(NamedTuple):
    """Updates of each pretraining phase."""

    obs: int
    dyn: int
    ac: int


def update_counts(config, ac_share: float, budget_scale: float = 1.0) -> Updates:
    """`twm_tf.schedule.schedule`'s pretraining counts with the actor-critic share `ac_share`.

    Args:
      config: a twm-tf Config, or a Namespace of its fields (the torch side).
      ac_share: fraction of pretrain_samples for the actor-critic.
      budget_scale: multiplies pretrain_samples (a short check of the whole pipeline).
    """
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else vars(config)
    # A namespace, not a Config: the released share makes the fractions sum to 1.6, which a
    # Config refuses.
    scaled = types.SimpleNamespace(
        **{
            **fields,
            "pretrain_samples": config.pretrain_samples * budget_scale,
            "pretrain_ac_fraction": ac_share,
        }
    )
    return Updates(*schedule.schedule(scaled).pretrain)


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma (1 - done_t) G_{t+1} over a whole recording, G after its end 0.

    Args:
      rewards: [T] float, r_t of step t (already transformed).
      dones: [T] bool, step t ended its episode (terminated or truncated).
      gamma: discount factor.

    Returns:
      [T] float64 returns.
    """
    returns = np.zeros(len(rewards), np.float64)
    following = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        following = rewards[t] + gamma * (0.0 if dones[t] else following)
        returns[t] = following
    return returns


class PretrainPlan:
    """Every batch of the three phases and the held-out windows, drawn once.

    Args:
      data: dataset.load's recording.
      config: a twm-tf Config (or a Namespace of its fields, the torch side).
      prefill: the phases train on steps [0, prefill).
      ac_share: the actor-critic's share of the pretraining budget.
      budget_scale: multiplies the budget (short checks); the batches are a prefix of a full run's.
      seed: the plan's seed; the same batches for every seed of both codes.

    Raises:
      ValueError: if the prefill reaches into the held-out steps.
    """

    def __init__(
        self,
        data: testdata.Recording,
        config,
        prefill: int = PREFILL_STEPS,
        ac_share: float = DEFAULT_AC_SHARE,
        budget_scale: float = 1.0,
        seed: int = plan_lib.PLAN_SEED,
    ):
        steps = len(data.frames)
        if not 0 < prefill <= steps - plan_lib.HELDOUT_STEPS:
            raise ValueError(
                f"prefill must be in (0, {steps - plan_lib.HELDOUT_STEPS}] (the dataset's "
                f"{steps} steps minus the {plan_lib.HELDOUT_STEPS} held out), got {prefill}"
            )
        self.data, self.prefill, self.ac_share = data, prefill, ac_share
        self.horizon = config.horizon
        self.updates = update_counts(config, ac_share, budget_scale)
        self.default_share_ac_updates = update_counts(config, DEFAULT_AC_SHARE, budget_scale).ac
        # plan.py's held-out windows (no updates planned there: they depend on nothing else).
        self._base = plan_lib.Plan(data, config, 0, 0)
        self.wm_length = self._base.length  # l + 2
        self.ac_length = config.horizon + 1
        obs_rng, dyn_rng, ac_rng, heldout_rng = (
            np.random.default_rng([seed, phase]) for phase in range(4)
        )
        batch = config.pretrain_obs_batch
        obs = [obs_rng.choice(prefill, batch, replace=False) for _ in range(self.updates.obs)]
        self.obs_steps = np.array(obs, np.int64).reshape(self.updates.obs, batch)
        self.dyn_starts = dataset_lib.window_starts(
            prefill, self.wm_length, self.updates.dyn, config.wm_batch, dyn_rng
        )
        self.ac_starts = dataset_lib.window_starts(
            prefill, self.ac_length, self.updates.ac, config.imag_starts, ac_rng
        )
        self.heldout_starts = self._base.heldout_starts
        heldout_begin = steps - plan_lib.HELDOUT_STEPS
        room = plan_lib.HELDOUT_STEPS - RETURN_TAIL
        count = plan_lib.HELDOUT_WINDOWS
        self.heldout_ac_starts = (
            heldout_begin
            + dataset_lib.window_starts(room, self.ac_length, 1, count, heldout_rng)[0]
        )
        returns = discounted_returns(
            np.tanh(data.rewards.astype(np.float64)), data.terminated | data.truncated, config.gamma
        )
        index = self.heldout_ac_starts[:, None] + np.arange(config.horizon)
        self.heldout_returns = returns[index].astype(np.float32)  # [count, H]

    def obs_batch(self, update: int) -> np.ndarray:
        """[pretrain_obs_batch, S, 64, 64] uint8 observations of VAE update `update`."""
        return self._base.observations(self.obs_steps[update])

    def dyn_windows(self, update: int) -> dict[str, np.ndarray]:
        """N windows of l + 2 steps (context, l trained, last target) of dynamics update."""
        return self._base.windows(self.dyn_starts[update], self.wm_length)

    def ac_windows(self, update: int) -> dict[str, np.ndarray]:
        """M windows of H + 1 steps of actor-critic update `update`."""
        return self._base.windows(self.ac_starts[update], self.ac_length)

    def heldout_windows(self) -> dict[str, np.ndarray]:
        """plan.py's held-out world-model windows [HELDOUT_WINDOWS, l + 2]."""
        return self._base.windows(self.heldout_starts, self.wm_length)

    def heldout_ac_windows(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(held-out actor-critic windows [HELDOUT_WINDOWS, H + 1], their returns [.., H])."""
        return self._base.windows(self.heldout_ac_starts, self.ac_length), self.heldout_returns

    def ac_eval_points(self, every: int) -> list[int]:
        """Actor-critic updates after which the critic is measured on held-out windows: 0, every
        `every` (0: none between), the default share's last update if within, and the last."""
        last = self.updates.ac
        points = {0, last, *range(0, last, every or last + 1)}
        if self.default_share_ac_updates <= last:
            points.add(self.default_share_ac_updates)
        return sorted(points)


def ac_terms_from_twm_tf(metrics: dict) -> dict[str, float]:
    """The AC_TERMS (and MC_TERMS) present in a twm-tf metrics dict, as floats."""
    out = {name: float(metrics[key]) for name, (key, _) in AC_TERMS.items() if key in metrics}
    out.update({name: float(metrics[name]) for name in MC_TERMS if name in metrics})
    return out


def ac_terms_from_original(metrics: dict) -> dict[str, float]:
    """The AC_TERMS (and MC_TERMS) present in the original's metrics, in twm-tf's units.

    `critic_loss` is the original's mean Normal NLL with unit weights (real data): minus
    0.5 ln(2 pi) it is twm-tf's mean 0.5 (V - R)^2.
    """
    out = {name: float(metrics[key]) for name, (_, key) in AC_TERMS.items() if key in metrics}
    if "critic_loss" in out:
        out["critic_loss"] -= _HALF_LOG_2PI
    out.update({name: float(metrics[name]) for name in MC_TERMS if name in metrics})
    return out


def series_names() -> list[str]:
    """Every compared series in phase order (the world-model terms held out as terms.py's)."""
    names = []
    for phase, phase_terms in PHASE_TERMS.items():
        names += [f"pre_{phase}/{t}" for t in phase_terms]
        names += [f"end_{phase}/{t}" for t in terms.WORLD_MODEL]
    names += [f"pre_ac/{t}" for t in AC_TERMS]
    names += [f"heldout_ac/{t}" for t in (*AC_TERMS, *MC_TERMS)]
    names += [f"end_ac/{t}" for t in (*AC_TERMS, *MC_TERMS)]
    return names

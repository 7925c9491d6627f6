"""When things happen in a run: update counts per phase, every-N triggers, progress phases.

prefill (env steps) -> pretrain VAE, dynamics, actor-critic (updates) -> train (env steps)
-> final evaluation (games)
"""

from typing import NamedTuple

from twm_tf import config as config_lib

PRETRAIN_PHASES = ("pretrain VAE", "pretrain dynamics", "pretrain actor-critic")


class Schedule(NamedTuple):
    """Update counts implied by the config (all in updates, not samples)."""

    pretrain_obs: int
    pretrain_dyn: int
    pretrain_ac: int
    main_train_steps: int

    @property
    def pretrain(self) -> tuple[int, int, int]:
        """Updates of each of PRETRAIN_PHASES, in order."""
        return self.pretrain_obs, self.pretrain_dyn, self.pretrain_ac


def schedule(config: config_lib.Config) -> Schedule:
    """The number of updates of each phase; pretraining budgets are in batch elements."""
    samples = config.pretrain_samples
    main_env_steps = config.env_steps - config.prefill_steps
    return Schedule(
        pretrain_obs=round(samples * config.pretrain_obs_fraction / config.pretrain_obs_batch),
        pretrain_dyn=round(
            samples * config.pretrain_dyn_fraction / (config.wm_batch * config.seq_len)
        ),
        pretrain_ac=round(
            samples * config.pretrain_ac_fraction / (config.imag_starts * config.horizon)
        ),
        main_train_steps=int(main_env_steps / config.env_steps_per_train_step + 1e-9),
    )


def every(step: int, interval: int) -> bool:
    """Whether something done every `interval` steps (0 = never) is due at `step`."""
    return interval > 0 and step % interval == 0


def phases(config: config_lib.Config) -> list[tuple[str, int]]:
    """The run's progress phases in order, with their size in units (steps, updates, games)."""
    return [
        ("prefill", config.prefill_steps),
        *zip(PRETRAIN_PHASES, schedule(config).pretrain),
        ("train", config.env_steps - config.prefill_steps),
        ("final evaluation", config.eval_episodes),
    ]


def phases_done(config: config_lib.Config, env_steps: int, pretrain_updates: int) -> dict:
    """Units of each phase that a run's counters say are done."""
    done = {"prefill": min(env_steps, config.prefill_steps)}
    offset = 0
    for phase, count in zip(PRETRAIN_PHASES, schedule(config).pretrain):
        done[phase] = min(max(pretrain_updates - offset, 0), count)
        offset += count
    done["train"] = max(env_steps - config.prefill_steps, 0)
    return done

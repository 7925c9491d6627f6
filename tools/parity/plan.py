"""The windows both codes train on in the many-update comparison, drawn once from one seed.

NumPy only (the torch side imports it). The dataset's last HELDOUT_STEPS steps are held out: the
world model is measured on HELDOUT_WINDOWS fixed windows from them and trains on windows from
the rest. World-model update u trains on `wm_windows(u)`; actor-critic update u imagines from
the windows `ac_inputs(u)` returns, restarting rollouts from its observations.

The held-out windows are drawn after the training windows from the same generator, so they
depend on the plan's sizes: only runs of the same --wm_updates and --ac_updates are evaluated on
the same windows (curves_compare checks the `heldout_starts` each run logs).
"""

import numpy as np

from tools.parity import dataset as dataset_lib
from twm_tf.dev import testdata

HELDOUT_STEPS = 5_000
HELDOUT_WINDOWS = 64
PLAN_SEED = 20261207  # The same windows for every seed of both codes.


class Plan:
    def __init__(self, data: testdata.Recording, config, wm_updates: int, ac_updates: int):
        """Args:
        data: dataset.load's recording.
        config: anything with wm_batch, seq_len and imag_starts (a twm-tf Config).
        wm_updates, ac_updates: how many batches of each to plan.
        """
        self.data = data
        self.length = config.seq_len + 2  # context step, l trained steps, the last target
        self.stack_index = testdata.stack_indices(data.is_first)  # [T, 4]
        steps = len(data.frames)
        train = steps - HELDOUT_STEPS
        rng = np.random.default_rng(PLAN_SEED)
        self.wm_starts = dataset_lib.window_starts(
            train, self.length, wm_updates, config.wm_batch, rng
        )
        self.ac_starts = dataset_lib.window_starts(
            train, self.length, ac_updates, config.wm_batch, rng
        )
        restarts = [rng.choice(train, config.imag_starts, replace=False) for _ in range(ac_updates)]
        # [ac_updates, M], also for no updates (a phase of the other kind only).
        self.restarts = np.array(restarts, np.int64).reshape(ac_updates, config.imag_starts)
        heldout = dataset_lib.window_starts(HELDOUT_STEPS, self.length, 1, HELDOUT_WINDOWS, rng)[0]
        self.heldout_starts = train + heldout

    def windows(self, starts: np.ndarray, length: int | None = None) -> dict[str, np.ndarray]:
        """Windows of `length` (default l + 2) steps from `starts` [N]: frames [N, L, 4, 64, 64]
        and [N, L] actions, raw rewards, terminated, truncated."""
        index = starts[:, None] + np.arange(length or self.length)
        out = {"frames": self.observations(index)}
        for name in ("actions", "rewards", "terminated", "truncated"):
            out[name] = getattr(self.data, name)[index]
        return out

    def wm_windows(self, update: int) -> dict[str, np.ndarray]:
        return self.windows(self.wm_starts[update])

    def heldout_windows(self) -> dict[str, np.ndarray]:
        return self.windows(self.heldout_starts)

    def ac_inputs(self, update: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(windows to imagine from, restart observations [M, 4, 64, 64]) of AC update `update`."""
        return self.windows(self.ac_starts[update]), self.observations(self.restarts[update])

    def observations(self, index: np.ndarray) -> np.ndarray:
        """[*index.shape, 4, 64, 64] uint8 observations of the steps at `index`."""
        return self.data.frames[self.stack_index[index]]

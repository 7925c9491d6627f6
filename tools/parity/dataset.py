"""A fixed dataset of real steps and a fixed sequence of batches, readable by both codes.

    python -m tools.parity.record_dataset --game=Boxing --steps=25000 --out=/data/boxing-25k.npz

The file is a `twm_tf.dev.testdata.Recording` of uniformly random training-mode steps (the format of
the recordings in testdata/: every step once, its newest frame, `testdata.stack_indices`
rebuilds the observations). NumPy only, so the torch side reads it too. `window_starts` draws the
batches' window starts once, so both codes train on the same windows in the same order.
"""

import numpy as np

from twm_tf.dev import testdata


def load(path: str) -> testdata.Recording:
    with np.load(path) as data:
        return testdata.Recording(**{name: data[name] for name in testdata.Recording._fields})


def window_starts(
    steps: int, length: int, updates: int, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """[updates, batch] int64 uniform starts of windows of `length` steps, distinct per batch."""
    starts = [rng.choice(steps - length + 1, batch, replace=False) for _ in range(updates)]
    return np.array(starts, np.int64).reshape(updates, batch)  # Also for updates = 0.


def record(game: str, steps: int, seed: int, out: str) -> None:
    """Plays `steps` uniformly random steps of the training-mode env and writes them to `out`."""
    from twm_tf import config as config_lib  # noqa: PLC0415 (TensorFlow side only)
    from twm_tf.envs import atari  # noqa: PLC0415

    env = atari.from_config(config_lib.Config(game=game), training=True, seed=seed)
    recording = testdata.play_random(env, steps, seed)
    env.close()
    np.savez(out, **recording._asdict())

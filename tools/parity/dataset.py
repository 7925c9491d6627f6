"""A fixed dataset of real steps and a fixed sequence of batches, readable by both codes.

    python -m tools.parity.record_dataset --game=Boxing --steps=25000 --out=/data/boxing-25k.npz

The file holds every step once, as twm-tf's replay buffer does (NumPy only, so the torch side
reads it too):

    frames      [T, 64, 64] uint8   newest frame of observation o_t
    is_first    [T] bool            o_t starts an episode (its stack repeats its frame)
    actions     [T] int32           a_t, drawn uniformly at random (--seed)
    rewards     [T] float32         raw r_t of the transition from o_t
    terminated  [T] bool            the transition ended the episode (life loss or game over)
    truncated   [T] bool            the time limit cut it

`stacks` rebuilds observations by twm-tf's rule; `window_starts` draws the batches' window
starts once, so both codes train on the same windows in the same order.
"""

import numpy as np

STACK = 4


def load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def stacks(data: dict[str, np.ndarray], index: np.ndarray) -> np.ndarray:
    """[*index.shape, 4, 64, 64] uint8 observations at `index`, oldest frame first."""
    columns = [index]
    for _ in range(STACK - 1):  # Step back, but stay on an episode's first step.
        index = np.where(data["is_first"][index], index, index - 1)
        columns.append(index)
    return data["frames"][np.stack(columns[::-1], axis=-1)]


def window_starts(
    steps: int, length: int, updates: int, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """[updates, batch] int64 uniform starts of windows of `length` steps, distinct per batch."""
    return np.stack(
        [rng.choice(steps - length + 1, batch, replace=False) for _ in range(updates)]
    ).astype(np.int64)


def record(game: str, steps: int, seed: int, out: str) -> None:
    """Plays `steps` uniformly random steps of the training-mode env and writes them to `out`."""
    from twm_tf import config as config_lib  # noqa: PLC0415 (TensorFlow side only)
    from twm_tf.envs import atari  # noqa: PLC0415

    env = atari.from_config(config_lib.Config(game=game), training=True, seed=seed)
    rng = np.random.default_rng(seed)
    columns = {name: [] for name in ("frames", "is_first", "actions", "rewards")}
    columns.update(terminated=[], truncated=[])
    obs, first = env.reset(), True
    for _ in range(steps):
        action = int(rng.integers(env.num_actions))
        step = env.step(action)
        for name, value in zip(
            columns,
            (obs[-1], first, action, step.reward, step.terminated, step.truncated),
        ):
            columns[name].append(value)
        obs, first = step.obs, bool(step.is_first)
    env.close()
    dtypes = dict(frames=np.uint8, is_first=bool, actions=np.int32, rewards=np.float32)
    np.savez(
        out,
        **{name: np.asarray(values, dtypes.get(name, bool)) for name, values in columns.items()},
    )

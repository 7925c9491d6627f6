"""The training loop's Python state (env, NumPy RNG, observation, scalars) in its checkpoint."""

import dataclasses
import io
import json

import numpy as np
import tensorflow as tf

from twm_tf import seeding
from twm_tf.envs import atari
from twm_tf.run import run_dir as run_dir_lib


@dataclasses.dataclass
class Loop:
    """What the loop carries between env steps besides TensorFlow variables.

    A checkpoint stores every field: the env and generator by their own state, the observation
    as an array and the scalars after it (in this order, which old checkpoints also use). A new
    scalar is one more field here.
    """

    env: atari.AtariEnv
    rng: np.random.Generator
    obs: np.ndarray
    first: bool = True  # The next step starts an episode.
    episode_return: float = 0.0
    train_credit: float = 0.0  # Train steps owed at the configured train ratio.

    @classmethod
    def scalar_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))[3:]


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)


class LoopState(tf.train.experimental.PythonState):
    """A `Loop` inside tf.train.Checkpoint.

    It also records how the run's random streams were derived from its seed (`seeding.describe`):
    a checkpoint whose streams another derivation made cannot continue bit-exactly and is refused.
    """

    def __init__(self, loop: Loop, seed: int, run_dir: str):
        self._loop, self._seed, self._run_dir = loop, seed, run_dir

    def serialize(self) -> bytes:
        loop = self._loop
        scalars = [getattr(loop, name) for name in Loop.scalar_names()]
        buffer = io.BytesIO()
        np.savez(
            buffer,
            env=np.frombuffer(loop.env.get_state().to_bytes(), np.uint8),
            rng=_json_bytes(loop.rng.bit_generator.state),
            seeds=_json_bytes(seeding.describe(self._seed)),
            obs=loop.obs,
            scalars=np.array(scalars, np.float64),
        )
        return buffer.getvalue()

    def deserialize(self, data: bytes) -> None:
        loop = self._loop
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            expected = seeding.describe(self._seed)
            saved = json.loads(arrays["seeds"].tobytes()) if "seeds" in arrays else None
            if saved != expected:
                raise run_dir_lib.RunDirError(
                    f"{self._run_dir}: the checkpoint's random streams were derived as {saved}, "
                    f"this version derives {expected}; resume it with the version that wrote it "
                    "or pick a new --run_dir"
                )
            loop.env.set_state(atari.EnvState.from_bytes(arrays["env"].tobytes()))
            loop.rng.bit_generator.state = json.loads(arrays["rng"].tobytes())
            loop.obs = arrays["obs"]
            for name, value in zip(Loop.scalar_names(), arrays["scalars"].tolist()):
                setattr(loop, name, type(getattr(loop, name))(value))

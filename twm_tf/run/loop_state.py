"""The Python side of the training loop inside its checkpoint (env, NumPy RNG, observation)."""

import io
import json

import numpy as np
import tensorflow as tf

from twm_tf.run import run_dir as run_dir_lib
from twm_tf import seeding
from twm_tf.envs import atari


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)


class LoopState(tf.train.experimental.PythonState):
    """The Python side of the loop (env, NumPy RNG, current observation) inside the checkpoint.

    It also records how the run's random streams were derived from its seed (`seeding.describe`):
    a checkpoint whose streams another derivation made cannot continue bit-exactly and is refused.
    """

    def __init__(self, agent):
        self._agent = agent

    def serialize(self) -> bytes:
        agent = self._agent
        buffer = io.BytesIO()
        np.savez(
            buffer,
            env=np.frombuffer(agent.env.get_state().to_bytes(), np.uint8),
            rng=_json_bytes(agent.rng.bit_generator.state),
            seeds=_json_bytes(seeding.describe(agent.config.seed)),
            obs=agent.obs,
            scalars=np.array([agent.first, agent.episode_return, agent.train_credit], np.float64),
        )
        return buffer.getvalue()

    def deserialize(self, data: bytes) -> None:
        agent = self._agent
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            expected = seeding.describe(agent.config.seed)
            saved = json.loads(arrays["seeds"].tobytes()) if "seeds" in arrays else None
            if saved != expected:
                raise run_dir_lib.RunDirError(
                    f"{agent.run_dir}: the checkpoint's random streams were derived as {saved}, "
                    f"this version derives {expected}; resume it with the version that wrote it "
                    "or pick a new --run_dir"
                )
            agent.env.set_state(atari.EnvState.from_bytes(arrays["env"].tobytes()))
            agent.rng.bit_generator.state = json.loads(arrays["rng"].tobytes())
            agent.obs = arrays["obs"]
            first, agent.episode_return, agent.train_credit = arrays["scalars"].tolist()
            agent.first = bool(first)

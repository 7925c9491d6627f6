"""A snapshot of an Atari env (`AtariEnv.get_state`), serializable without pickle."""

import dataclasses
import io
import json

import numpy as np

_STATE_FORMAT_VERSION = 1  # Of `EnvState.to_bytes`; bump on any change to its layout.


@dataclasses.dataclass(frozen=True, eq=False)
class EnvState:
    """A snapshot of an `envs.atari.AtariEnv`: everything its future steps depend on.

    The two raw screens kept for pooling are left out: every step rewrites both before pooling
    them, and a game over that leaves them stale is followed by a reset that rewrites them.

    Attributes:
        game: the game, one of GAMES.
        settings: the `make` arguments other than game and seed; a state restores only into an env
            with the same game and settings.
        ale: the serialized emulator state, its RNG included (`ALEState.serialize`).
        stack: [frame_stack, frame_size, frame_size] uint8, the current observation.
        lives: lives after the last step, against which the next step detects a life loss.
        game_steps: agent steps of the current game, for the time limit.
        started: whether `reset()` was called.
        rng: `bit_generator.state` of the generator drawing the no-op frame counts.
    """

    game: str
    settings: dict[str, bool | int]
    ale: bytes
    stack: np.ndarray
    lives: int
    game_steps: int
    started: bool
    rng: dict

    def to_bytes(self) -> bytes:
        """Serializes the state without pickle, for a checkpoint (see `from_bytes`).

        Format: an uncompressed `np.savez` archive of three uint8 arrays: `ale` and `stack` as
        above, and `header`, the UTF-8 JSON of the other fields plus a format `version`.
        """
        header = {
            "version": _STATE_FORMAT_VERSION,
            "game": self.game,
            "settings": self.settings,
            "lives": self.lives,
            "game_steps": self.game_steps,
            "started": self.started,
            "rng": self.rng,  # PCG64's 128-bit integers are exact in JSON (Python ints).
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.frombuffer(json.dumps(header).encode(), np.uint8),
            ale=np.frombuffer(self.ale, np.uint8),
            stack=self.stack,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "EnvState":
        """Reads a state written by `to_bytes`.

        Raises:
            ValueError: if `data` has another format version.
        """
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes())
            version = header.pop("version")
            if version != _STATE_FORMAT_VERSION:
                raise ValueError(
                    f"env state has format version {version}, expected {_STATE_FORMAT_VERSION}"
                )
            return cls(ale=arrays["ale"].tobytes(), stack=arrays["stack"], **header)

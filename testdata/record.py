"""Records the Atari test sequences testdata/<game>.npz (format: twm_tf/dev/testdata.py).

Each recording is a training-mode run of uniformly random actions with the game's
`testdata.RECORD_SETTINGS`, so tests can replay it in the environment. Run from the repository root:

    python -m testdata.record            # or: bazel run //testdata:record
"""

import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

from twm_tf.dev import testdata
from twm_tf.envs import atari

_GAMES = flags.DEFINE_list("games", list(testdata.GAMES), "Games to record.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 400, "Agent steps per recording.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where to write <game>.npz; default: the source tree's testdata/ (also under `bazel run`).",
)


def record(game: str, num_steps: int) -> testdata.Recording:
    """Plays `num_steps` uniformly random actions; returns them with what the env produced."""
    settings = testdata.RECORD_SETTINGS[game]
    env = atari.make(game, training=True, **settings)
    recording = testdata.play_random(env, num_steps, settings["seed"])
    env.close()
    return recording


def _check(game: str, recording: testdata.Recording) -> None:
    """Fails unless the recording shows what the tests rely on (rewards, episode ends)."""
    if not recording.rewards.any():
        raise RuntimeError(f"{game}: no non-zero reward; record more steps")
    if game == "Breakout" and not recording.terminated.any():
        raise RuntimeError(f"{game}: no life loss; record more steps")
    if not recording.is_first[1:].any():
        raise RuntimeError(f"{game}: no episode end; record more steps")


def main(argv):
    del argv
    output_dir = _OUTPUT_DIR.value
    if output_dir is None:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")  # Set by `bazel run`.
        if workspace:
            output_dir = os.path.join(workspace, "testdata")
        else:
            output_dir = os.path.normpath(os.path.dirname(testdata.path(testdata.GAMES[0])))
    for game in _GAMES.value:
        recording = record(game, _NUM_STEPS.value)
        _check(game, recording)
        path = os.path.join(output_dir, os.path.basename(testdata.path(game)))
        np.savez_compressed(path, **recording._asdict())
        logging.info(
            "%s: %d steps, reward sum %.0f, %d terminated, %d truncated, %d firsts, %d bytes",
            path,
            len(recording.actions),
            recording.rewards.sum(),
            recording.terminated.sum(),
            recording.truncated.sum(),
            recording.is_first.sum(),
            os.path.getsize(path),
        )


if __name__ == "__main__":
    app.run(main)

"""Scores a run's world model on held-out real transitions: 1..H-step open-loop predictions.

    python -m launch.world_model_eval --run_dir=runs/pong --steps=2000 --horizon=15
    python -m launch.world_model_eval --run_dir=runs/pong --recorded=Pong

Fresh games are played with the run's policy in the evaluation-mode env (or a recorded testdata
sequence is read); writes world_model_eval.json and .png to --out (default <run_dir>/analysis).
"""

import json

from absl import app
from absl import flags

import launch
from twm_tf import files
from twm_tf.analysis import world_model_quality
from twm_tf.dev import testdata
from twm_tf.run import run_dir as run_dir_lib

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_STEPS = flags.DEFINE_integer("steps", 1000, "Real env steps to collect (at most).", lower_bound=2)
_EPISODES = flags.DEFINE_integer(
    "episodes", None, "Stop collecting after this many games.", lower_bound=1
)
_HORIZON = flags.DEFINE_integer(
    "horizon", None, "Open-loop steps H (default: config.horizon).", lower_bound=1
)
_RECORDED = flags.DEFINE_enum("recorded", None, testdata.GAMES, "Use a testdata recording.")
_LATENT = flags.DEFINE_enum("latent", "mode", ["mode", "sample"], "Latent fed back.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the env, the actions and latent samples.", lower_bound=0
)
_OUT = flags.DEFINE_string(
    "out", None, "Output directory (default: <run_dir>/analysis); its earlier results are replaced."
)
flags.mark_flag_as_required("run_dir")


def _recording(game: str, run_game: str) -> testdata.Recording:
    """The testdata recording of `game`, refused unless the run plays it (its action set)."""
    if game != run_game:
        launch.fail(f"--recorded={game} is a recording of {game}; the run plays {run_game}")
    try:
        return testdata.load(game)
    except (OSError, ValueError, KeyError) as error:  # Missing, truncated, corrupted (zip).
        launch.fail(f"testdata {testdata.path(game)} cannot be read ({error}); restore it")


def main(argv):
    del argv
    launch.quiet_library_logs()
    out_dir = _OUT.value or run_dir_lib.path(_RUN_DIR.value, run_dir_lib.ANALYSIS)
    with launch.one_line_errors():  # Refused before the run is loaded.
        out = files.OutputDir(
            out_dir, "--out", world_model_quality.FILES, ("world_model_eval.json", "horizons")
        )
    run = launch.load_run_or_fail(_RUN_DIR.value)
    if _RECORDED.value:
        source = f"recorded:{_RECORDED.value}"
        recording = _recording(_RECORDED.value, run.config.game)
        data = world_model_quality.from_recording(recording, run.config.frame_stack)
    else:
        source = f"env:{run.config.game}:seed={_SEED.value}"
        data = world_model_quality.collect(run, _STEPS.value, _SEED.value, _EPISODES.value)
    horizon = _HORIZON.value or run.config.horizon
    if len(data.actions) <= horizon:
        launch.fail(f"{source} has {len(data.actions)} steps, too few for --horizon={horizon}")
    summary = world_model_quality.evaluate(run, data, horizon, source, _LATENT.value, _SEED.value)
    with launch.one_line_errors(), out.staged() as staging:
        paths = [out.final(path) for path in world_model_quality.write(summary, staging)]
    print(json.dumps({"files": paths, "horizon_1": summary["horizons"][0]}, indent=2))


if __name__ == "__main__":
    app.run(main)

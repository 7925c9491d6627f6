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
from twm_tf import run_dir as run_dir_lib
from twm_tf import testdata
from twm_tf.analysis import world_model_quality

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_STEPS = flags.DEFINE_integer("steps", 1000, "Real env steps to collect (at most).")
_EPISODES = flags.DEFINE_integer("episodes", None, "Stop collecting after this many games.")
_HORIZON = flags.DEFINE_integer("horizon", None, "Open-loop steps H (default: config.horizon).")
_RECORDED = flags.DEFINE_enum("recorded", None, testdata.GAMES, "Use a testdata recording.")
_LATENT = flags.DEFINE_enum("latent", "mode", ["mode", "sample"], "Latent fed back.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the env, the actions and latent samples.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: <run_dir>/analysis).")
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    run = launch.load_run_or_fail(_RUN_DIR.value)
    if _RECORDED.value:
        source = f"recorded:{_RECORDED.value}"
        data = world_model_quality.from_recording(
            testdata.load(_RECORDED.value), run.config.frame_stack
        )
    else:
        source = f"env:{run.config.game}:seed={_SEED.value}"
        data = world_model_quality.collect(run, _STEPS.value, _SEED.value, _EPISODES.value)
    summary = world_model_quality.evaluate(
        run, data, _HORIZON.value or run.config.horizon, source, _LATENT.value, _SEED.value
    )
    paths = world_model_quality.write(
        summary, _OUT.value or run_dir_lib.path(_RUN_DIR.value, run_dir_lib.ANALYSIS)
    )
    print(json.dumps({"files": paths, "horizon_1": summary["horizons"][0]}, indent=2))


if __name__ == "__main__":
    app.run(main)

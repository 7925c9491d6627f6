"""Imagined trajectory of a run beside the real game with the same actions, and its attention.

    python -m launch.imagine --run_dir=runs/pong --steps=15 --out=/tmp/pong_dream

Plays --warmup real steps with the run's policy (evaluation-mode env), imagines --steps from
there with the policy inside the world model, replays the chosen actions in the real game from the
saved env state, and writes strip.png, dream.gif, attention.png, attention.npy and dream.json.
"""

import json

from absl import app
from absl import flags

import launch
from twm_tf import files
from twm_tf.analysis import dream

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_STEPS = flags.DEFINE_integer(
    "steps", None, "Imagined steps H (default: config.horizon).", lower_bound=1
)
_OUT = flags.DEFINE_string(
    "out", None, "Output directory: new, or one of imagine's earlier outputs (overwritten)."
)
_WARMUP = flags.DEFINE_integer(
    "warmup", 50, "Real policy steps before the imagination starts.", lower_bound=0
)
_LATENT = flags.DEFINE_enum("latent", "sample", ["sample", "mode"], "Predicted latent fed back.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the env, the actions and latent samples.", lower_bound=0
)
flags.mark_flag_as_required("run_dir")
flags.mark_flag_as_required("out")


def main(argv):
    del argv
    launch.quiet_library_logs()
    with launch.one_line_errors():  # Refused before the run is loaded.
        out = files.OutputDir(_OUT.value, "--out", dream.FILES, ("dream.json", "attention_tokens"))
    run = launch.load_run_or_fail(_RUN_DIR.value)
    trajectory = dream.dream_from_run(
        run, _STEPS.value or run.config.horizon, _WARMUP.value, _SEED.value, _LATENT.value
    )
    with launch.one_line_errors(), out.staged() as staging:
        paths = dream.write(trajectory, run.action_meanings, staging)
    print(json.dumps({name: out.final(path) for name, path in paths.items()}, indent=2))


if __name__ == "__main__":
    app.run(main)

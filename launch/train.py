"""Trains TWM on one Atari 100k game; running the same command again resumes the run.

python -m launch.train --game=Pong --run_dir=runs/pong
python -m launch.train --preset=debug --run_dir=/tmp/twm_debug --config.env_steps=500
"""

import json

from absl import app
from absl import flags

import launch
from twm_tf import config_flags
from twm_tf import trainer as trainer_lib
from twm_tf.run import run_dir as run_dir_lib

_GAME = flags.DEFINE_string("game", None, "Atari 100k game, e.g. Pong (default: the preset's).")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "Checkpoints, TensorBoard logs, eval.json.")
_SEED = flags.DEFINE_integer(
    "seed", None, "Seed of every generator (default: the preset's).", lower_bound=0
)
_EVAL_EPISODES = flags.DEFINE_integer(
    "eval_episodes", None, "Games of the final evaluation (default: the preset's, paper 100)."
)
config_flags.define_flags()
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    overrides = {
        name: flag.value
        for name, flag in (("game", _GAME), ("seed", _SEED), ("eval_episodes", _EVAL_EPISODES))
        if flag.value is not None
    }
    try:
        config = config_flags.from_flags(**overrides)
    except ValueError as error:
        launch.fail(error)
    if config.seed < 0:  # The seed derivation (twm_tf.seeding) takes non-negative seeds.
        launch.fail(f"config.seed must be >= 0, got {config.seed}")
    with launch.one_line_errors():
        # Before the trainer is built: a file, an unwritable path or a damaged config.json in the
        # way is refused at once, and nothing in the directory is rewritten.
        run_dir_lib.check_config(_RUN_DIR.value, config)
    trainer = trainer_lib.Trainer(config, _RUN_DIR.value)
    with launch.one_line_errors(OSError):  # OSError: e.g. config.json on a full disk.
        summary = trainer.train()
    if summary is None:  # Stopped by Ctrl-C / SIGTERM at a step boundary, checkpoint written.
        print(f"stopped; run the same command to resume from {trainer.saver.latest}")
        return
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("scores", "lengths", "random_scores")}
        )
    )


if __name__ == "__main__":
    app.run(main)

"""Evaluates the latest checkpoint of a training run; writes <run_dir>/eval.json.

    python -m launch.evaluate --run_dir=runs/pong                 # the paper's 100 games
    python -m launch.evaluate --run_dir=runs/pong --episodes=10

Evaluation mode as the paper: no no-ops, a game ends at game over or the time limit, actions
sampled from the actor on the mode of z. Prints the mean and the human-normalized score.
"""

import json

from absl import app
from absl import flags

import launch
from twm_tf.evaluation import protocol as evaluation

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_EPISODES = flags.DEFINE_integer(
    "episodes", None, "Games (default: the run's eval_episodes).", lower_bound=1
)
_SEED = flags.DEFINE_integer(
    "seed", None, "Evaluation seed (default: as the run's final one).", lower_bound=0
)
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    with launch.one_line_errors(OSError):  # OSError: eval.json on a full disk.
        summary = evaluation.evaluate_run(_RUN_DIR.value, _EPISODES.value, _SEED.value)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("scores", "lengths", "random_scores")}
        )
    )


if __name__ == "__main__":
    app.run(main)

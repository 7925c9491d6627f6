"""Exports the policy (encoder + actor) of a training run as a standalone SavedModel + LiteRT model.

    python -m launch.export_policy --run_dir=runs/pong                # -> runs/pong/policy
    python launch/play.py --policy=runs/pong/policy --episodes=10   # needs no twm_tf
    python launch/play.py --policy=runs/pong/policy --runtime=litert --threads=2   # nor TF

The latest checkpoint in <run_dir>/checkpoints is exported; see twm_tf/deploy/export.py for the
SavedModel's signatures and metadata, twm_tf/deploy/litert_policy.py for its policy.tflite.
"""

from absl import app
from absl import flags

import launch
from twm_tf.deploy import export

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_OUTPUT = flags.DEFINE_string(
    "output",
    None,
    "Export directory (default: <run_dir>/policy): missing, empty or an earlier export, which "
    "is replaced.",
)
_JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", True, "XLA-compile the policy step (faster on CPU at batch 1)."
)
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    with launch.one_line_errors():
        path = export.export_from_run(_RUN_DIR.value, _OUTPUT.value, _JIT_COMPILE.value)
    print(f"policy exported to {path}")


if __name__ == "__main__":
    app.run(main)

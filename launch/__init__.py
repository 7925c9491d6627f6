"""absl binaries over twm_tf (`python -m launch.<name>`).

Importing this package, which `python -m launch.<name>` does before the binary's own imports, sets
two TensorFlow environment defaults (an explicit setting wins); TensorFlow reads both once, when it
is imported, so they must be set here rather than in twm_tf:

- TF_ENABLE_ONEDNN_OPTS=1: TensorFlow enables its oneDNN CPU kernels by default only on CPUs with
  AVX-512 VNNI/bf16/AMX, yet on an AVX2-only CPU they made the world-model update 2.2x faster
  (docs/benchmarks.md).
- TF_CPP_MIN_LOG_LEVEL=1: TensorFlow's C++ INFO lines (CPU features, oneDNN notices) stay out of
  the console unless the command line asks for them with absl's --verbosity (-v).
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
if not any(arg.startswith(("--verbosity", "-v")) for arg in sys.argv[1:]):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def quiet_library_logs() -> None:
    """Python-side library INFO logs (TensorFlow, absl users) off unless --verbosity was given.

    Call it in a binary's main(), after absl parsed the flags. The project's own messages are
    printed, not logged, so they stay.
    """
    import tensorflow as tf
    from absl import flags
    from absl import logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("WARNING")


def fail(error: object) -> None:
    """Exits with status 1 and one line on stderr, `<binary>: <error>` (no help dump)."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    raise SystemExit(f"{name}: {error}")


@contextlib.contextmanager
def one_line_errors(*extra: type[BaseException]):
    """Ends the binary with `fail`'s one line for every error that names a bad input.

    Those are twm_tf's errors.RunError (a file that is missing, malformed or in the way of an
    output, a damaged checkpoint, a run directory of another config or locked by a live run, a
    diverged run), FileNotFoundError (no config.json, no checkpoint) and `extra`; anything else
    is a bug and keeps its traceback.
    """
    from twm_tf import errors

    try:
        yield
    except (errors.RunError, FileNotFoundError, *extra) as error:
        fail(error)


def load_run_or_fail(run_dir: str):
    """The run's world model and policy (twm_tf.run.restore.load_run), or a one-line exit."""
    from twm_tf.run import restore

    with one_line_errors():
        return restore.load_run(run_dir)

"""The JSON file a tuning probe writes, with the threads it ran on."""

import json
import os

import tensorflow as tf


def intra_op_threads() -> int:
    """The intra-op threads TensorFlow runs this process with.

    TensorFlow's API reports 0 unless the threads were set through it, also when
    TF_NUM_INTRAOP_THREADS set them (the probes' documented commands do), and 0 means one thread
    per core.
    """
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if threads > 0:
        return threads
    from_env = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return os.cpu_count() or 1


def write(path: str, result: dict) -> None:
    """Writes `result` and the threads it was measured with to the JSON file `path`."""
    with open(path, "w") as f:
        json.dump({**result, "threads": intra_op_threads()}, f, indent=1)

"""A tuning probe's measurement log and the JSON file it writes, with the threads it ran on."""

from collections.abc import Callable
import json
import os
import time

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


def measured_updates(
    updates: int, every: int, measure: Callable[[int], dict], update: Callable[[int], None]
) -> list[dict]:
    """Calls `update(i)` for i < `updates`; measures before update 0, every `every`, after the last.

    Returns:
      The log: per measurement {updates, seconds since the start, **measure(updates)}, each also
      printed as a JSON line as it is taken.
    """
    log, start = [], time.monotonic()
    for i in range(updates + 1):
        if i % every == 0 or i == updates:
            log.append(dict(updates=i, seconds=round(time.monotonic() - start, 1), **measure(i)))
            print(json.dumps(log[-1]), flush=True)
        if i < updates:
            update(i)
    return log

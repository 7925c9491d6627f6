"""Keras dtype policies applied while models are built, never left behind process-wide."""

import contextlib

import keras


@contextlib.contextmanager
def policy(name: str):
    """Builds models under the Keras dtype policy `name`, restoring the global one after.

    A Keras layer keeps the policy that was global when it was created, so models built inside
    the block compute in `name` for their lifetime while the process default stays as it was.
    Exports use float32 whatever the training precision: at batch 1 bfloat16 casts cost more than
    they save, and float32 keeps the exported probabilities exact.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)

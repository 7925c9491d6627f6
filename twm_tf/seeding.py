"""Independent random streams derived from one run seed, one per purpose.

A run has a single `config.seed`. Giving it to every generator directly would make them all the
same stream (with seed 0 the prefill actions equal the first replay sample indices, scaled).
Instead each purpose gets its own child of `np.random.SeedSequence(seed)`, addressed by a fixed
spawn key, so streams are statistically independent, stable when purposes are added, and equal
seeds still give equal runs:

    seeding.numpy_rng(seed, "prefill")       # a np.random.Generator
    seeding.derive(seed, "eval_env", game)   # an int for APIs that take integer seeds

The derivation (`describe`) is stored in a run's checkpoint, so a run resumed by another version
that derived its streams differently is refused instead of silently diverging.
"""

import contextlib
import random

import numpy as np

# Index = spawn key: append new purposes, never reorder or remove (that changes every run).
PURPOSES = (
    "weights",  # Initial weights and the dropout seed generators (keras_weights).
    "tf",  # The agent's tf.random.Generator: stateless seeds of every compiled step.
    "env",  # The training env: ALE seed and no-op counts.
    "prefill",  # Uniformly random prefill actions.
    "replay",  # Replay sampling (windows, single observations).
    "eval_env",  # Evaluation game i's env.
    "eval_actions",  # Evaluation game i's action sampling.
)

VERSION = 1  # Bump when the derivation itself changes.


def sequence(seed: int, purpose: str, *index: int) -> np.random.SeedSequence:
    """The SeedSequence of `purpose` (and of item `index` within it, e.g. an evaluation game)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random-stream purpose {purpose!r}; known: {PURPOSES}")
    for i in index:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise ValueError(f"stream index must be a non-negative int, got {i!r}")
    key = (PURPOSES.index(purpose), *(int(i) for i in index))
    return np.random.SeedSequence(int(seed), spawn_key=key)


def derive(seed: int, purpose: str, *index: int) -> int:
    """An int seed in [0, 2**31) for `purpose`: for ALE, Keras and tf.random.Generator."""
    return int(sequence(seed, purpose, *index).generate_state(1, np.uint32)[0] >> 1)


def numpy_rng(seed: int, purpose: str, *index: int) -> np.random.Generator:
    """A PCG64 generator of its own for `purpose`."""
    return np.random.default_rng(sequence(seed, purpose, *index))


def describe(seed: int) -> dict:
    """The derivation of a run's streams, as stored in its checkpoint."""
    return {
        "version": VERSION,
        "seed": int(seed),
        "streams": {purpose: derive(seed, purpose) for purpose in PURPOSES},
    }


@contextlib.contextmanager
def keras_weights(seed: int):
    """Builds Keras layers with initial weights and dropout seeds derived from `seed`.

    Keras draws the seed of every unseeded initializer and dropout SeedGenerator from Python's
    global `random` module when the layer is created; this seeds it for the block and restores
    its previous state after, so building a model leaves no process-global trace.
    """
    previous = random.getstate()
    random.seed(derive(seed, "weights"))
    try:
        yield
    finally:
        random.setstate(previous)

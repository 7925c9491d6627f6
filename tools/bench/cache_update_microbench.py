"""Attention over a growing key/value cache: a concat per step against a buffer updated in place.

The attention core of an imagined rollout without its projections: 10 layers x 15 steps at
M = 400, 4 heads x 64, 3 new tokens per step, the cache growing from one block. Run from the
repository root (~1 min):

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench.cache_update_microbench

Forms timed: concat (twm-tf's); a fixed [C, B, H, D] buffer written with TensorScatterUpdate; a
fixed [B, H, C, D] buffer written with TensorStridedSliceUpdate; the same buffer in an XLA while
loop, written with dynamic-update-slice. The fixed buffers are attended in full, with the
unwritten slots masked. Prints seconds per rollout of each form in three repeats; results in
docs/benchmarks.md ("Tried and left out").
"""

import time

import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

BATCH, HEADS, HEAD_DIM, NEW, LAYERS, STEPS = 400, 4, 64, 3, 10, 15
CAPACITY = NEW * (STEPS + 1)
_RNG = np.random.default_rng(0)
_W = tf.constant(_RNG.standard_normal([HEAD_DIM, HEAD_DIM]).astype(np.float32) * 0.1)


def attend(q, keys, values, valid=None):
    """q [B, H, NEW, D] over keys/values [B, H, T, D]; only the first `valid` keys if given."""
    scores = tf.einsum("bhid,bhjd->bhij", q, keys) * HEAD_DIM**-0.5
    if valid is not None:
        scores = tf.where(tf.range(tf.shape(keys)[2]) < valid, scores, -1e9)
    return tf.einsum("bhij,bhjd->bhid", tf.nn.softmax(scores, -1), values)


def new_tokens(x):
    """The next keys from the last output, so that each step depends on the one before."""
    return tf.tanh(tf.einsum("bhid,de->bhie", x, _W))


@tf.function
def concat(x0):
    caches = [([x0], [x0]) for _ in range(LAYERS)]
    x = x0
    for _ in range(STEPS):
        for layer in range(LAYERS):
            new = new_tokens(x)
            keys, values = caches[layer]
            caches[layer] = keys, values = keys + [new], values + [new * 0.5]
            x = attend(new, tf.concat(keys, 2), tf.concat(values, 2))
    return x


@tf.function
def scatter_rows(x0):
    def put(buffer, rows, new):  # buffer [C, B, H, D] <- new [B, H, NEW, D] at rows
        return tf.tensor_scatter_nd_update(buffer, rows[:, None], tf.transpose(new, [2, 0, 1, 3]))

    empty = tf.zeros([CAPACITY, BATCH, HEADS, HEAD_DIM])
    caches = [(put(empty, tf.range(NEW), x0),) * 2 for _ in range(LAYERS)]
    x = x0
    for t in range(STEPS):
        rows = tf.range((t + 1) * NEW, (t + 2) * NEW)
        for layer in range(LAYERS):
            new = new_tokens(x)
            keys, values = caches[layer]
            caches[layer] = keys, values = put(keys, rows, new), put(values, rows, new * 0.5)
            head_major = [tf.transpose(b, [1, 2, 0, 3]) for b in (keys, values)]
            x = attend(new, *head_major, valid=(t + 2) * NEW)
    return x


@tf.function
def strided_update(x0):
    def put(buffer, start, new):  # buffer [B, H, C, D] <- new at slots start..start + NEW
        return tf.raw_ops.TensorStridedSliceUpdate(
            input=buffer,
            begin=[0, 0, start, 0],
            end=[BATCH, HEADS, start + NEW, HEAD_DIM],
            strides=[1, 1, 1, 1],
            value=new,
        )

    buffer = tf.pad(x0, [[0, 0], [0, 0], [0, CAPACITY - NEW], [0, 0]])
    caches = [(buffer, buffer) for _ in range(LAYERS)]
    x = x0
    for t in range(STEPS):
        start = (t + 1) * NEW
        for layer in range(LAYERS):
            new = new_tokens(x)
            keys, values = caches[layer]
            caches[layer] = keys, values = put(keys, start, new), put(values, start, new * 0.5)
            x = attend(new, keys, values, valid=start + NEW)
    return x


@tf.function(jit_compile=True)
def xla_while_loop(x0):
    def put(buffer, start, new):  # in place inside XLA's loop: dynamic-update-slice
        return xla.dynamic_update_slice(buffer, new, tf.stack([0, 0, start, 0]))

    buffer = tf.pad(x0, [[0, 0], [0, 0], [0, CAPACITY - NEW], [0, 0]])

    def step(t, x, keys, values):
        keys, values = list(keys), list(values)
        start = (t + 1) * NEW
        for layer in range(LAYERS):
            new = new_tokens(x)
            keys[layer], values[layer] = (
                put(keys[layer], start, new),
                put(values[layer], start, new * 0.5),
            )
            x = attend(new, keys[layer], values[layer], valid=start + NEW)
        return t + 1, x, tuple(keys), tuple(values)

    caches = (buffer,) * LAYERS
    _, x, _, _ = tf.while_loop(lambda t, *_: t < STEPS, step, (tf.constant(0), x0, caches, caches))
    return x


def main():
    x0 = tf.constant(_RNG.standard_normal([BATCH, HEADS, NEW, HEAD_DIM]).astype(np.float32))
    forms = (concat, scatter_rows, strided_update, xla_while_loop)
    for form in forms:
        form(x0)  # traces
    for repeat in range(3):
        for form in forms:
            start = time.perf_counter()
            form(x0).numpy()
            print(repeat, form.__name__, round(time.perf_counter() - start, 3))


if __name__ == "__main__":
    main()

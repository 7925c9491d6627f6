"""Variants of twm-tf's random draws, for tracing a gap that only many updates show.

Each variant replaces one of twm-tf's samplers with another exact sampler of the same
distribution, drawn differently: the latent and policy samples from tf.random.stateless_categorical
instead of the Gumbel-max trick, the dropout masks from Keras' own Dropout (one float32 uniform per
unit) instead of twm_tf.ops.dropout's 16-bit integers. If a variant moves a curve of
curves_tf.py towards the original's, the replaced sampler is where the codes differ.
"""

import contextlib

import keras
import tensorflow as tf

from twm_tf.models import distributions
from twm_tf.ops import dropout

NAMES = ("none", "categorical_sampler", "keras_dropout")


def _categorical_max(logits: tf.Tensor, shape, seed, output_type=tf.int64) -> tf.Tensor:
    """distributions._gumbel_max's contract (a class index per row of logits broadcast to
    `shape`) from tf.random.stateless_categorical."""
    classes = tf.shape(logits)[-1]
    rows = tf.reshape(tf.broadcast_to(logits, shape), [-1, classes])
    sample = tf.random.stateless_categorical(rows, 1, tf.cast(seed, tf.int64), dtype=tf.int64)
    return tf.cast(tf.reshape(sample, shape[:-1]), output_type)


@contextlib.contextmanager
def applied(name: str):
    """Installs variant `name` (one of NAMES) inside the block; models must be traced in it."""
    if name not in NAMES:
        raise ValueError(f"--ablation: expected one of {NAMES}, got {name!r}")
    saved = distributions._gumbel_max, dropout.Dropout.call
    if name == "categorical_sampler":
        distributions._gumbel_max = _categorical_max
    elif name == "keras_dropout":
        dropout.Dropout.call = keras.layers.Dropout.call
    try:
        yield
    finally:
        distributions._gumbel_max, dropout.Dropout.call = saved

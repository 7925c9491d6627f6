"""Gumbel noise for categorical sampling inside TensorFlow graphs (Gumbel-max trick).

argmax(logits + noise) is a sample of softmax(logits) and top_k of (logits + noise) draws without
replacement; both work for any leading dims and under XLA, unlike tf.random.stateless_categorical
(no XLA kernel for int64 seeds). Philox is pinned so the stream does not depend on automatic
algorithm selection; XLA's Philox still orders its stream differently from the TF kernel's, so a
seed gives the same noise eagerly and in tf.function but not under jit_compile.
"""

import tensorflow as tf


def noise(shape, seed: tf.Tensor) -> tf.Tensor:
    """Standard Gumbel samples of `shape` (float32) from a [2] stateless seed."""
    # minval keeps both logarithms finite.
    uniform = tf.random.stateless_uniform(shape, seed, minval=1e-20, maxval=1.0, alg="philox")
    return -tf.math.log(-tf.math.log(uniform))

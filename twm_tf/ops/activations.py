"""SiLU whose gradient is one fused pass (XLA) instead of TensorFlow's separate element-wise ops.

tf.nn.silu's gradient recomputes the sigmoid and combines it in five more kernels, each a full
pass over the activation. On the VAE's convolution activations (hundreds of MB per world-model
update) that traffic is a visible part of the update; fused, the gradient reads x and dy once
(measured gain in docs/benchmarks.md). The forward pass stays tf.nn.silu (oneDNN fuses it on
CPU). Works on any device.
"""

import tensorflow as tf


@tf.function(jit_compile=True)
def _silu_gradient(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    sigmoid = tf.sigmoid(x)
    return dy * sigmoid * (1.0 + x * (1.0 - sigmoid))


@tf.custom_gradient
def silu(x: tf.Tensor) -> tf.Tensor:
    """x * sigmoid(x): the values and gradient of tf.nn.silu, any shape and float dtype."""
    return tf.nn.silu(x), lambda dy: _silu_gradient(x, dy)

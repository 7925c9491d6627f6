"""LayerNorm over the last axis, in the form TensorFlow's oneDNN remapper fuses into one kernel.

keras.layers.LayerNormalization computes its moments and affine map in about eight element-wise
kernels, each a full pass over the activation. Written as a training-mode FusedBatchNormV3 on a
[1, rows, D, 1] NCHW view followed by the affine map (Keras 2's fused LayerNorm graph), grappler
replaces the whole forward pass by one _MklLayerNorm kernel wherever oneDNN is on and no gradient
needs the intermediate tensors, as in imagination's rollout. Under a gradient that form runs a
fused batch norm and its gradient kernel, which made the world-model update slower, so training
calls keep Keras's element-wise form (timings of both in docs/benchmarks.md). Both give the same
numbers, to float round-off, as keras.layers.LayerNormalization, whose variables this layer also
has.
"""

import keras
import tensorflow as tf


def layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis, in float32.

    Args:
      x: [..., D] float32, rank >= 2.
      gamma: [D] float32 scale.
      beta: [D] float32 offset.
      epsilon: added to the variance (biased, as in PyTorch).

    Returns:
      [..., D] float32.
    """
    shape = tf.shape(x)
    # With static shapes grappler would fold the Fill ops below into constants, and the remapper
    # only fuses the pattern with Fill ops; a PlaceholderWithDefault is never folded.
    rows = tf.raw_ops.PlaceholderWithDefault(input=tf.reduce_prod(shape[:-1]), shape=[])
    rows_shape = tf.reshape(rows, [1])
    view = tf.reshape(x, tf.stack([1, rows, shape[-1], 1]))  # [1, rows, D, 1]: rows are channels
    empty = tf.constant([], tf.float32)
    normalized = tf.raw_ops.FusedBatchNormV3(
        x=view,
        scale=tf.fill(rows_shape, 1.0),
        offset=tf.fill(rows_shape, 0.0),
        mean=empty,
        variance=empty,
        epsilon=epsilon,
        data_format="NCHW",
        is_training=True,
    ).y
    return beta + tf.reshape(normalized, shape) * gamma


class LayerNorm(keras.layers.Layer):
    """Drop-in for keras.layers.LayerNormalization(axis=-1): weights gamma (ones) and beta (zeros).

    Computes in float32 under any precision policy (as Keras does) and returns the compute dtype.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.autocast = False  # gamma and beta stay float32 under mixed policies

    def build(self, input_shape):
        width = input_shape[-1]
        self.gamma = self.add_weight(
            shape=(width,), initializer="ones", name="gamma", autocast=False
        )
        self.beta = self.add_weight(
            shape=(width,), initializer="zeros", name="beta", autocast=False
        )

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[..., D] -> [..., D]; training selects the form that is faster under a gradient."""
        x = tf.cast(x, tf.float32)
        if training:
            y = keras.ops.layer_normalization(x, self.gamma, self.beta, epsilon=self.epsilon)
        else:
            y = layer_norm(x, self.gamma, self.beta, self.epsilon)
        return tf.cast(y, self.compute_dtype)

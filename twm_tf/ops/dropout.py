"""Dropout whose mask costs half the random numbers of Keras's.

keras.layers.Dropout draws one float32 uniform per unit (a 32-bit Philox word) and keeps the unit
where it is >= rate. Here each 32-bit word gives two units a 16-bit integer, kept where it is
>= round(rate * 2^16): the drop probability is round(rate * 2^16) / 2^16, within 7.7e-6 of the rate
(0.1 -> 0.1000061). The Transformer-XL's dropouts draw 88M units per world-model update, whose
random numbers are the largest element-wise cost of the update; halving them shortens forward +
backward of its feed-forward layers (measured in docs/benchmarks.md).
"""

import keras
import tensorflow as tf

_LEVELS = 1 << 16


class Dropout(keras.layers.Dropout):
    """keras.layers.Dropout (same arguments, variables and seeding) with a 16-bit random mask."""

    def __init__(self, rate: float, **kwargs):
        if kwargs.get("noise_shape") is not None:
            raise ValueError(f"{kwargs.get('name', 'Dropout')}: noise_shape is not supported")
        super().__init__(rate, **kwargs)

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """inputs [...] -> same shape; training=False returns the inputs."""
        if not training or self.rate == 0:
            return inputs
        # The seed generator's int64 state, folded to int32 as Keras does for stateless ops.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        size = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32
        )
        bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
        keep = tf.reshape(bits >= round(self.rate * _LEVELS), tf.shape(inputs))
        # A select, as Keras does: its gradient keeps the 1-byte mask, where a multiply by a
        # float mask would keep 4 bytes per unit for the backward pass.
        return tf.where(keep, inputs * (1.0 / (1.0 - self.rate)), tf.zeros([], inputs.dtype))

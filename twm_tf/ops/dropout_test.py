"""Tests of the 16-bit-mask dropout: rate, scaling, gradient, seeding."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest, parameterized

from twm_tf.ops import dropout


class DropoutTest(parameterized.TestCase):
    def test_identity_outside_training(self):
        x = tf.random.normal([3, 5])
        layer = dropout.Dropout(0.3, seed=1)
        np.testing.assert_array_equal(layer(x, training=False), x)
        np.testing.assert_array_equal(dropout.Dropout(0.0, seed=1)(x, training=True), x)

    @parameterized.parameters(0.1, 0.5, 0.9)
    def test_drops_at_rate_and_scales_the_rest(self, rate):
        # An odd size: the last random word's second half is unused.
        x = tf.random.uniform([1001, 999], 1.0, 2.0)
        y = dropout.Dropout(rate, seed=3)(x, training=True).numpy()
        dropped = y == 0
        # Binomial standard deviation at n = 1e6 is at most 5e-4.
        self.assertAlmostEqual(dropped.mean(), rate, delta=3e-3)
        np.testing.assert_allclose(y[~dropped], x.numpy()[~dropped] / (1 - rate), rtol=1e-6)

    def test_gradient_is_the_mask(self):
        x = tf.random.uniform([64, 32], 1.0, 2.0)
        layer = dropout.Dropout(0.25, seed=5)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        grad = tape.gradient(y, x).numpy()
        np.testing.assert_allclose(grad, np.where(y.numpy() == 0, 0.0, 1 / 0.75), rtol=1e-6)

    def test_seeded_like_keras(self):
        x = tf.ones([16, 128])
        first, second = (dropout.Dropout(0.5, seed=7) for _ in range(2))
        a = first(x, training=True)
        np.testing.assert_array_equal(a, second(x, training=True))
        # The seed generator advances: the next call draws a new mask.
        self.assertFalse(np.array_equal(a, first(x, training=True)))
        self.assertIsInstance(first.seed_generator, keras.random.SeedGenerator)

    def test_runs_under_xla_and_in_bfloat16(self):
        layer = dropout.Dropout(0.5, seed=9, dtype="mixed_bfloat16")
        x = tf.ones([8, 33], tf.bfloat16)
        y = tf.function(lambda x: layer(x, training=True), jit_compile=True)(x)
        self.assertEqual(y.dtype, tf.bfloat16)
        self.assertEqual(set(np.unique(y.numpy().astype(np.float32))), {0.0, 2.0})

    def test_noise_shape_is_refused(self):
        with self.assertRaisesRegex(ValueError, "noise_shape"):
            dropout.Dropout(0.1, noise_shape=[1, 4], name="d")


if __name__ == "__main__":
    absltest.main()

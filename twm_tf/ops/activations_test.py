"""The fused SiLU matches tf.nn.silu in value and gradient."""

import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.ops import activations


class SiluTest(testing.TestCase):
    @parameterized.parameters(tf.float32, tf.bfloat16)
    def test_value_and_gradient_match_tf_silu(self, dtype):
        # Large magnitudes too: the sigmoid saturates there, and the gradient must stay finite.
        x = tf.cast(tf.random.stateless_normal([3, 5, 7], [0, 1]) * 6.0, dtype)
        dy = tf.cast(tf.random.stateless_normal([3, 5, 7], [2, 3]), dtype)

        def value_and_gradient(fn):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            return y, tape.gradient(y, x, output_gradients=dy)

        tolerance = 1e-6 if dtype == tf.float32 else 2e-2
        for fused, reference in zip(
            value_and_gradient(activations.silu), value_and_gradient(tf.nn.silu), strict=True
        ):
            self.assertEqual(fused.dtype, dtype)
            self.assertAllClose(
                tf.cast(fused, tf.float32),
                tf.cast(reference, tf.float32),
                atol=tolerance,
                rtol=tolerance,
            )

    def test_gradient_inside_a_compiled_function(self):
        x = tf.linspace(-8.0, 8.0, 33)

        @tf.function(jit_compile=True)
        def gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(activations.silu(x))
            return tape.gradient(y, x)

        sigmoid = tf.sigmoid(x)
        self.assertAllClose(gradient(x), sigmoid * (1.0 + x * (1.0 - sigmoid)), atol=1e-6)


if __name__ == "__main__":
    absltest.main()

"""Tests of the FLOP count against hand-computed cases."""

import tensorflow as tf
from absl.testing import absltest

from twm_tf.dev import flops
from twm_tf.dev import testing


def _count(fn, *specs) -> int:
    return flops.count(tf.function(fn).get_concrete_function(*specs))


class FlopsTest(testing.TestCase):
    def test_matmul_and_einsum(self):
        a, b = tf.TensorSpec([4, 5]), tf.TensorSpec([5, 3])
        self.assertEqual(_count(tf.matmul, a, b), 2 * 4 * 5 * 3)
        self.assertEqual(
            _count(lambda x, y: tf.matmul(x, y, transpose_a=True), tf.TensorSpec([5, 4]), b),
            2 * 4 * 5 * 3,
        )
        x, y = tf.TensorSpec([2, 3, 4]), tf.TensorSpec([2, 4, 5])
        self.assertEqual(_count(lambda p, q: tf.einsum("bij,bjk->bik", p, q), x, y), 2 * 120)
        self.assertEqual(_count(tf.matmul, x, y), 2 * 120)  # BatchMatMulV2

    def test_convolution_forward_and_both_gradients(self):
        kernel = tf.Variable(tf.ones([3, 3, 2, 4]))
        macs = 8 * 8 * 4 * (3 * 3 * 2)  # Output elements x kernel volume per output.

        def forward(x):
            return tf.nn.conv2d(x, kernel, 1, "SAME")

        spec = tf.TensorSpec([1, 8, 8, 2])
        self.assertEqual(_count(forward, spec), 2 * macs)

        def forward_and_backward(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(forward(x))
            return tape.gradient(loss, [x, kernel])

        self.assertEqual(_count(forward_and_backward, spec), 3 * 2 * macs)

    def test_transposed_convolution(self):
        kernel = tf.ones([4, 4, 3, 5])  # [h, w, out, in]

        def up(x):
            return tf.nn.conv2d_transpose(x, kernel, [2, 10, 10, 3], 2, "VALID")

        # Every input element meets every kernel tap once: 2 x 4 x 4 x 5 inputs x 4 x 4 x 3.
        self.assertEqual(_count(up, tf.TensorSpec([2, 4, 4, 5])), 2 * (2 * 4 * 4 * 5) * 48)

    def test_function_called_from_a_nested_gradient(self):
        w = tf.ones([3, 4])

        @tf.function
        def backward(dy):  # Defined in the graph of `gradient`, not of the outer function.
            return tf.matmul(dy, w, transpose_b=True)  # 2 x 4 x 3

        @tf.custom_gradient
        def layer(x):
            return tf.matmul(x, w), backward  # 2 x 3 x 4

        @tf.function
        def gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(layer(x))
            return tape.gradient(y, x)

        self.assertEqual(_count(lambda x: 2.0 * gradient(x), tf.TensorSpec([2, 3])), 2 * 48)

    def test_dynamic_shapes_are_refused(self):
        with self.assertRaisesRegex(ValueError, "no static shape"):
            _count(tf.matmul, tf.TensorSpec([None, 5]), tf.TensorSpec([5, 3]))


if __name__ == "__main__":
    absltest.main()

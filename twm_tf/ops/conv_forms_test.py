"""The faster forms of the convolutions equal the Keras layers they replace."""

import keras
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.ops import conv_forms


def _twins(fast_class, keras_class, input_shape, **kwargs):
    """The fast layer and the Keras one, built on input_shape, with the same random weights."""
    fast = fast_class(name="conv", **kwargs)
    reference = keras_class(name="conv", **kwargs)
    fast.build(input_shape)
    reference.build(input_shape)
    # Nonzero biases, so a missing bias add would show.
    weights = [tf.random.stateless_normal(w.shape, [i, 7]) for i, w in enumerate(reference.weights)]
    fast.set_weights(weights)
    reference.set_weights(weights)
    return fast, reference


def _value_and_gradients(layer, x, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            # A non-uniform weighting, so a permuted output would change the gradients.
            loss = tf.reduce_sum(y * tf.random.stateless_normal(y.shape, [3, 4]))
        return y, tape.gradient(loss, [x, *layer.trainable_variables])

    return run(x)


class ConvFormsTest(testing.TestCase):
    def _assert_equal_layers(self, fast_class, keras_class, input_shape, jit_compile, **kwargs):
        """Values and gradients (input, kernel, bias) of both layers agree."""
        fast, reference = _twins(fast_class, keras_class, input_shape, activation="tanh", **kwargs)
        x = tf.random.stateless_normal(input_shape, [1, 2])
        got, want = (_value_and_gradients(layer, x, jit_compile) for layer in (fast, reference))
        self.assertEqual(got[0].shape, want[0].shape)
        self.assertAllClose(got, want, atol=1e-5, rtol=1e-5)

    @parameterized.parameters(
        # The encoder's last conv; non-square, odd strides, more outputs.
        dict(input_shape=(3, 6, 6, 5), kernel=4, strides=2, jit_compile=False),
        dict(input_shape=(3, 6, 6, 5), kernel=4, strides=2, jit_compile=True),
        dict(input_shape=(2, 9, 7, 3), kernel=(3, 2), strides=(3, 1), jit_compile=False),
    )
    def test_patch_conv_equals_conv2d(self, input_shape, kernel, strides, jit_compile):
        self._assert_equal_layers(
            conv_forms.PatchConv2D,
            keras.layers.Conv2D,
            input_shape,
            jit_compile,
            filters=4,
            kernel_size=kernel,
            strides=strides,
        )

    @parameterized.parameters(False, True)
    def test_point_transposed_conv_equals_conv2d_transpose(self, jit_compile):
        self._assert_equal_layers(
            conv_forms.PointTransposedConv2D,
            keras.layers.Conv2DTranspose,
            (3, 1, 1, 6),
            jit_compile,
            filters=4,
            kernel_size=(5, 3),
            strides=2,
        )

    @parameterized.parameters(
        # The decoder's output layer; a kernel the stride does not divide; stride 3, non-square.
        dict(input_shape=(2, 5, 5, 6), kernel=6, strides=2, jit_compile=False),
        dict(input_shape=(2, 5, 5, 6), kernel=6, strides=2, jit_compile=True),
        dict(input_shape=(2, 4, 3, 5), kernel=5, strides=2, jit_compile=False),
        dict(input_shape=(2, 3, 4, 5), kernel=(4, 2), strides=3, jit_compile=False),
    )
    def test_sub_pixel_transposed_conv_equals_conv2d_transpose(
        self, input_shape, kernel, strides, jit_compile
    ):
        self._assert_equal_layers(
            conv_forms.SubPixelTransposedConv2D,
            keras.layers.Conv2DTranspose,
            input_shape,
            jit_compile,
            filters=3,
            kernel_size=kernel,
            strides=strides,
        )

    def test_keeps_the_keras_variables(self):
        # Same variable names and shapes: checkpoints of the plain Keras layers restore.
        for fast_class, keras_class, shape in [
            (conv_forms.PatchConv2D, keras.layers.Conv2D, (1, 6, 6, 5)),
            (conv_forms.PointTransposedConv2D, keras.layers.Conv2DTranspose, (1, 1, 1, 6)),
            (conv_forms.SubPixelTransposedConv2D, keras.layers.Conv2DTranspose, (1, 3, 3, 6)),
        ]:
            fast, reference = _twins(fast_class, keras_class, shape, filters=4, kernel_size=4)
            self.assertEqual(
                [(w.path, w.shape) for w in fast.weights],
                [(w.path, w.shape) for w in reference.weights],
            )

    def test_rejects_what_it_cannot_compute(self):
        point = conv_forms.PointTransposedConv2D(4, 5, strides=2, name="deconv_0")
        with self.assertRaisesRegex(ValueError, r"deconv_0.*\[N, 1, 1, C\].*\(2, 2, 2, 6\)"):
            point(tf.zeros([2, 2, 2, 6]))
        # A stride larger than the kernel: Keras pads the output to 3x3.
        point = conv_forms.PointTransposedConv2D(4, 2, strides=3, name="deconv_0")
        with self.assertRaisesRegex(ValueError, r"deconv_0.*output size \(3, 3\)"):
            point(tf.zeros([2, 1, 1, 6]))
        patch = conv_forms.PatchConv2D(4, 3, padding="same", name="conv_3")
        with self.assertRaisesRegex(ValueError, "conv_3.*valid padding"):
            patch(tf.zeros([2, 6, 6, 3]))
        sub_pixel = conv_forms.SubPixelTransposedConv2D(4, 3, strides=(2, 1), name="output")
        with self.assertRaisesRegex(ValueError, r"output.*equal strides"):
            sub_pixel(tf.zeros([2, 5, 5, 3]))


if __name__ == "__main__":
    absltest.main()

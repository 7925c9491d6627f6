"""recompute: same values and gradients, activations rebuilt only after the output gradient."""

import keras
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.ops import activations
from twm_tf.ops import recompute


def _stack():
    """Two SiLU convolutions and a dense layer, with nonzero biases."""
    layers = [
        keras.layers.Conv2D(6, 3, strides=2, activation=activations.silu, name="conv_0"),
        keras.layers.Conv2D(5, 3, activation=activations.silu, name="conv_1"),
        keras.layers.Flatten(),
        keras.layers.Dense(7, name="dense"),
    ]
    shape = (None, 13, 11, 3)
    for i, layer in enumerate(layers):
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
        for j, w in enumerate(layer.weights):
            w.assign(tf.random.stateless_normal(w.shape, [i, j]) * 0.3)

    def fn(x):
        for layer in layers:
            x = layer(x)
        return x

    return fn, [w for layer in layers for w in layer.trainable_weights]


def _gradients(fn, variables, x, graph: bool = True):
    """The value and gradients (x too if float) of a weighted sum of fn(x), as a tf.function
    or eagerly."""

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            # A non-uniform weighting, so permuted gradients would show.
            loss = tf.reduce_sum(y * tf.random.stateless_normal(y.shape, [5, 6]))
        sources = [x, *variables] if x.dtype.is_floating else variables
        return y, tape.gradient(loss, sources)

    return tf.function(run) if graph else run


class RecomputeTest(testing.TestCase):
    @parameterized.parameters(False, True)
    def test_values_and_gradients_match(self, graph):
        fn, variables = _stack()
        x = tf.random.stateless_normal([4, 13, 11, 3], [1, 2])
        (y, grads), (y_re, grads_re) = (
            _gradients(f, variables, x, graph)(x) for f in (fn, recompute.recompute(fn))
        )
        self.assertAllClose(y_re, y, atol=1e-6)
        self.assertLen(grads_re, 1 + len(variables))
        for g_re, g in zip(grads_re, grads, strict=True):
            self.assertGreater(float(tf.reduce_max(tf.abs(g))), 0.0)
            self.assertAllClose(g_re, g, atol=1e-5)

    def test_integer_input_as_the_encoder_frames(self):
        fn, variables = _stack()

        def from_pixels(frames):
            return fn(tf.cast(frames, tf.float32) / 255.0)

        frames = tf.random.stateless_uniform([4, 13, 11, 3], [3, 4], 0, 256, tf.int32)
        frames = tf.cast(frames, tf.uint8)
        y, grads = _gradients(from_pixels, variables, frames)(frames)
        wrapped = _gradients(recompute.recompute(from_pixels), variables, frames)
        y_re, grads_re = wrapped(frames)
        self.assertAllClose(y_re, y, atol=1e-6)
        self.assertLen(grads_re, len(variables))
        for g_re, g in zip(grads_re, grads, strict=True):
            self.assertAllClose(g_re, g, atol=1e-5)

    def test_recomputation_waits_for_the_output_gradient(self):
        fn, variables = _stack()
        x = tf.random.stateless_normal([4, 13, 11, 3], [1, 2])
        graph = _gradients(recompute.recompute(fn), variables, x)
        ops = graph.get_concrete_function(x).graph.get_operations()
        convs = [op for op in ops if op.type == "Conv2D"]
        self.assertLen(convs, 4)  # two in the forward pass, two again in the backward pass
        after_gradient = [
            any(name.startswith("gradient_tape/") for name in testing.ancestor_names(op))
            for op in convs
        ]
        # The rerun depends on the output gradient, so the executor cannot run it early.
        self.assertEqual(sorted(after_gradient), [False, False, True, True])


if __name__ == "__main__":
    absltest.main()

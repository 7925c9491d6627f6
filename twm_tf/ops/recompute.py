"""Gradient checkpointing: a function's activations are recomputed in the backward pass.

`recompute(fn)(x)` returns fn(x) but keeps only x for the gradient. When the gradient of the
output arrives, fn runs again and is differentiated. The rerun waits for that gradient (a
control dependency): in a graph, TensorFlow runs every op as soon as its inputs exist, so without
it the "recomputation" would run during the forward pass and save nothing.

The VAE encoder uses it in training: its convolution activations (about 0.9 GB at paper shapes)
would otherwise stay alive through the decoder's and the dynamics model's backward passes, the
world-model update's memory peak. fn must be deterministic (no dropout or sampling): its two
runs must compute the same function.
"""

from collections.abc import Callable

import tensorflow as tf


def recompute(fn: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """Wraps fn: x -> y (one tensor in, one out, any variables) to recompute it for gradients.

    An integer x (e.g. uint8 frames) gets no gradient, and none is computed for it.
    """

    @tf.custom_gradient
    def wrapped(x: tf.Tensor):
        y = fn(x)

        def gradient(dy: tf.Tensor, variables=None):
            with tf.control_dependencies([dy]):
                x_again = tf.identity(x)
            sources = [x_again] if x.dtype.is_floating else []
            sources += list(variables or [])
            with tf.GradientTape() as tape:
                tape.watch(sources)
                y_again = fn(x_again)
            grads = tape.gradient(
                y_again,
                sources,
                output_gradients=dy,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            dx, *dvariables = grads if x.dtype.is_floating else [None, *grads]
            return dx, dvariables

        return y, gradient

    return wrapped

"""Tests for the fusable LayerNorm."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.ops import layer_norm


def _pair(width: int):
    """A keras LayerNormalization and a LayerNorm with the same random gamma and beta."""
    reference = keras.layers.LayerNormalization(epsilon=1e-5)
    reference.build((None, width))
    ours = layer_norm.LayerNorm(1e-5)
    ours.build((None, width))
    for a, b in ((reference.gamma, ours.gamma), (reference.beta, ours.beta)):
        value = tf.random.normal([width])
        a.assign(value)
        b.assign(value)
    return reference, ours


class LayerNormTest(testing.TestCase):
    def test_hand_computed(self):
        x = tf.constant([[1.0, 2.0, 3.0, 4.0], [-1.0, -1.0, 1.0, 1.0]])
        gamma, beta = tf.constant([1.0, 2.0, 1.0, 1.0]), tf.constant([0.0, 0.0, 0.5, 0.0])
        # Row 0: mean 2.5, variance 1.25; row 1: mean 0, variance 1.
        expected = np.array(
            [
                np.array([-1.5, -0.5, 0.5, 1.5]) / np.sqrt(1.25 + 1e-3),
                np.array([-1.0, -1.0, 1.0, 1.0]) / np.sqrt(1.0 + 1e-3),
            ]
        ) * [1.0, 2.0, 1.0, 1.0] + [0.0, 0.0, 0.5, 0.0]
        self.assertAllClose(layer_norm.layer_norm(x, gamma, beta, 1e-3), expected, atol=1e-6)

    @parameterized.product(
        shape=[(7, 32), (5, 3, 32), (2, 3, 4, 32)], training=[False, True], graph=[False, True]
    )
    def test_matches_keras(self, shape, training, graph):
        reference, ours = _pair(shape[-1])
        x = 3.0 * tf.random.normal(shape) + 1.0
        call = tf.function(ours) if graph else ours
        self.assertAllClose(call(x, training=training), reference(x), atol=2e-5)

    @parameterized.parameters(False, True)
    def test_gradients_match_keras(self, training):
        reference, ours = _pair(16)
        x = tf.random.normal([4, 3, 16])
        weights = tf.random.normal([4, 3, 16])  # a loss that is not invariant to the norm

        def gradients(layer, **kwargs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.sin(layer(x, **kwargs)) * weights)
            return tape.gradient(loss, [x, layer.gamma, layer.beta])

        for got, want in zip(gradients(ours, training=training), gradients(reference)):
            self.assertAllClose(got, want, atol=1e-4)

    def test_restores_keras_checkpoint(self):
        reference, _ = _pair(8)
        path = tf.train.Checkpoint(norm=reference).save(os.path.join(self.create_tempdir(), "c"))
        ours = layer_norm.LayerNorm(1e-5)
        ours.build((None, 8))
        tf.train.Checkpoint(norm=ours).restore(path).assert_consumed()
        self.assertAllEqual(ours.gamma, reference.gamma)
        self.assertAllEqual(ours.beta, reference.beta)

    def test_mixed_bfloat16(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            norm = layer_norm.LayerNorm(1e-5)
            norm.build((None, 8))
        finally:
            keras.mixed_precision.set_global_policy("float32")
        x = tf.random.normal([3, 8])
        y = norm(tf.cast(x, tf.bfloat16))
        self.assertEqual(y.dtype, tf.bfloat16)
        self.assertEqual(norm.gamma.dtype, tf.float32)
        expected = (x - tf.reduce_mean(x, -1, keepdims=True)) / tf.math.reduce_std(x, -1, True)
        self.assertAllClose(tf.cast(y, tf.float32), expected, atol=0.05)


# Builds a graph with static shapes, runs it and prints the op types grappler left.
_OPTIMIZED_OP_TYPES = textwrap.dedent(
    """
    import tensorflow as tf
    from twm_tf.ops import layer_norm

    tf.compat.v1.disable_eager_execution()
    x = tf.compat.v1.placeholder(tf.float32, [400, 3, 256])
    gamma = tf.compat.v1.placeholder(tf.float32, [256])
    beta = tf.compat.v1.placeholder(tf.float32, [256])
    y = layer_norm.layer_norm(x, gamma, beta, 1e-5)
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session() as session:
        session.run(
            y,
            {x: tf.ones([400, 3, 256]).eval(), gamma: [1.0] * 256, beta: [0.0] * 256},
            options=tf.compat.v1.RunOptions(output_partition_graphs=True),
            run_metadata=metadata,
        )
    print(" ".join(sorted({n.op for g in metadata.partition_graphs for n in g.node})))
    """
)


class FusionTest(testing.TestCase):
    """What grappler makes of the graph with oneDNN on (default on some x86 CPUs, forced here)."""

    def test_forward_is_one_kernel(self):
        result = subprocess.run(
            [sys.executable, "-c", _OPTIMIZED_OP_TYPES],
            env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        types = set(result.stdout.split())
        self.assertIn("_MklLayerNorm", types)
        self.assertFalse({"FusedBatchNormV3", "_MklNativeFusedBatchNormV3", "Mean"} & types)


if __name__ == "__main__":
    absltest.main()

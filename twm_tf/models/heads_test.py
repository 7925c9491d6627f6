"""Tests of the prediction heads."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf.dev import testing
from twm_tf.models import heads


class PredictionHeadTest(testing.TestCase):
    def test_shapes_bias_and_dropout_only_in_training(self):
        head = heads.PredictionHead((8, 6), 3, 0.5, bias=2.0, name="head")
        head.build((None, 4))
        self.assertEqual([layer.units for layer in head.hidden], [8, 6])
        self.assertAllEqual(head.final.bias, np.full(3, 2.0, np.float32))
        h = tf.random.stateless_normal([2, 5, 4], [0, 1])
        self.assertEqual(head(h).shape, (2, 5, 3))
        self.assertAllEqual(head(h), head(h))
        self.assertNotAllClose(head(h, training=True), head(h))

    def test_no_hidden_layers_is_silu_then_linear(self):
        head = heads.PredictionHead((), 1, 0.0, name="head")
        head.build((None, 2))
        h = tf.constant([[1.0, -2.0]])
        silu = h / (1.0 + tf.exp(-h))
        expected = tf.matmul(silu, head.final.kernel) + head.final.bias
        self.assertAllClose(head(h), expected)
        self.assertEqual(head.final.kernel.shape, (2, 1))
        self.assertLess(abs(float(head.final.kernel[0, 0])), math.sqrt(3.0 / 2.0) + 1e-6)


if __name__ == "__main__":
    absltest.main()

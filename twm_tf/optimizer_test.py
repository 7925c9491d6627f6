"""Tests of the guarded optimizer: normal updates, skipped non-finite ones."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import optimizer
from twm_tf import testing


class OptimizerTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.config = config_lib.debug(weight_decay=0.0)
        self.weights = tf.Variable([1.0, -2.0])
        self.opt = optimizer.Optimizer("net", 0.1, 100.0, self.config)
        self.opt.build([self.weights])

    def _apply(self, loss, grad):
        step = tf.function(lambda x, g: self.opt.apply(x, [g], [self.weights]))
        return step(tf.constant(loss), tf.constant(grad))

    def test_finite_update_is_adams_step(self):
        metrics = self._apply(1.0, [3.0, -4.0])
        self.assertEqual(float(metrics["net/skipped"]), 0.0)
        self.assertAllClose(metrics["net/grad_norm"], 5.0)
        # Adam's first step moves each weight by ~lr against its gradient's sign.
        self.assertAllClose(self.weights, [0.9, -1.9], atol=1e-4)
        self.assertEqual(int(self.opt.adam.iterations), 1)

    def test_non_finite_loss_or_gradient_is_skipped(self):
        before = [v.numpy().copy() for v in self.opt.variables]
        for loss, grad in ((np.nan, [1.0, 1.0]), (1.0, [np.inf, 0.0]), (1.0, [np.nan, 0.0])):
            metrics = self._apply(loss, grad)
            self.assertEqual(float(metrics["net/skipped"]), 1.0)
        self.assertAllEqual(self.weights, [1.0, -2.0])
        for a, b in zip(before, self.opt.variables):
            self.assertAllEqual(a, b)  # Moments and step count untouched.
        self._apply(1.0, [1.0, 1.0])
        self.assertEqual(int(self.opt.adam.iterations), 1)

    def test_minimize_reports_loss_metrics_and_its_own(self):
        def loss_fn():
            loss = tf.reduce_sum(tf.square(self.weights))
            return loss, {"net/loss": loss}

        metrics = tf.function(lambda: self.opt.minimize(loss_fn, [self.weights]))()
        self.assertAllClose(metrics["net/loss"], 5.0)
        self.assertAllClose(metrics["net/grad_norm"], np.hypot(2.0, 4.0))
        self.assertEqual(float(metrics["net/skipped"]), 0.0)


if __name__ == "__main__":
    absltest.main()

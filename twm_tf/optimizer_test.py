"""Tests of the guarded optimizer: normal updates, skipped non-finite ones."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import optimizer
from twm_tf.dev import testing


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

    def test_steps_follow_torch_adam_with_clip_and_coupled_l2(self):
        # torch.optim.Adam(lr, eps, weight_decay) after clip_grad_norm_, written out in NumPy.
        lr, eps, l2, clip = 0.1, 1e-3, 0.5, 2.0
        config = config_lib.debug(adam_eps=eps, weight_decay=l2)
        weights = tf.Variable([1.0, -2.0, 1.0])
        opt = optimizer.Optimizer("net", lr, clip, config)
        opt.build([weights])
        step = tf.function(lambda g: opt.apply(tf.constant(1.0), [g], [weights]))
        w, m, v = np.array([1.0, -2.0, 1.0]), np.zeros(3), np.zeros(3)
        for t, grad in enumerate(([3.0, -4.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]), 1):
            g = np.array(grad)
            g = g * min(1.0, clip / (np.linalg.norm(g) + 1e-6)) + l2 * w
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w = w - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + eps)
            step(tf.constant(grad))
            self.assertAllClose(weights, w, rtol=1e-5, atol=1e-7)
        # Keras' Adam (decoupled decay, epsilon on sqrt(v)) ends at [0.647, -1.513, 0.857].
        self.assertAllClose(weights, [0.734, -1.727, 0.702], atol=1e-3)

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

"""Tests of the discount weights and the GAE lambda-returns against loop references."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.models import returns as returns_lib

# Two rollouts of H = 6. Row 0 predicts an episode end (discount 0) at step 2 and keeps going;
# row 1 is cut after step 3 (restart at step 4).
_REWARDS = np.array([[1.0, 0.5, 2.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 3.0, -2.0, 0.5]], np.float32)
_VALUES = np.array(
    [[0.5, 1.0, -0.5, 2.0, 1.5, 0.0, 3.0], [1.0, 0.0, 2.0, 1.0, -1.0, 0.5, 2.0]], np.float32
)
_DISCOUNTS = np.array([[0.9, 0.8, 0.0, 0.7, 0.9, 0.6], [0.9, 0.5, 0.8, 0.4, 0.9, 0.7]], np.float32)
_DONES = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]], bool)
_RESTARTS = np.array([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0]], bool)


def _reference_weights(discounts, restarts):
    weights = np.zeros_like(discounts)
    for m in range(discounts.shape[0]):
        product = 1.0
        for t in range(discounts.shape[1]):
            if t > 0 and restarts[m, t]:
                product = 1.0
            weights[m, t] = product
            product *= discounts[m, t]
    return weights


def _reference_gae(rewards, values, discounts, dones, lam):
    """Advantages from the GAE recursion, returns from the independent TD(lambda) recursion."""
    num_rows, horizon = rewards.shape
    advantages = np.zeros_like(rewards)
    returns = np.zeros_like(rewards)
    for m in range(num_rows):
        next_advantage = 0.0
        next_return = values[m, horizon]
        for t in reversed(range(horizon)):
            g = discounts[m, t] * (0.0 if dones[m, t] else 1.0)
            delta = rewards[m, t] + g * values[m, t + 1] - values[m, t]
            next_advantage = delta + g * lam * next_advantage
            advantages[m, t] = next_advantage
            next_return = rewards[m, t] + g * ((1 - lam) * values[m, t + 1] + lam * next_return)
            returns[m, t] = next_return
    return advantages, returns


class ReturnsTest(testing.TestCase):
    def test_discount_weights_match_reference(self):
        weights = returns_lib.discount_weights(_DISCOUNTS, _RESTARTS)
        expected = _reference_weights(_DISCOUNTS, _RESTARTS)
        self.assertAllClose(weights, expected)
        # Spelled out: row 0 carries the 0 discount on, row 1 restarts at step 4.
        self.assertAllClose(weights[0, :4], [1.0, 0.9, 0.72, 0.0])
        self.assertAllClose(weights[1, 3:], [0.36, 1.0, 0.9])

    def test_discount_weights_of_one_step_with_dynamic_shapes(self):
        fn = tf.function(
            returns_lib.discount_weights,
            input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([None, None], tf.bool)],
        )
        self.assertAllClose(fn(tf.fill([3, 1], 0.5), tf.zeros([3, 1], tf.bool)), tf.ones([3, 1]))
        self.assertAllClose(fn(_DISCOUNTS, _RESTARTS), _reference_weights(_DISCOUNTS, _RESTARTS))

    @parameterized.parameters(False, True)
    def test_lambda_returns_match_reference(self, use_function):
        fn = returns_lib.lambda_returns
        if use_function:
            # A dynamic horizon must trace too (one trace for any H).
            spec = tf.TensorSpec([None, None], tf.float32)
            fn = tf.function(
                lambda r, v, g, d: returns_lib.lambda_returns(r, v, g, d, 0.95),
                input_signature=[spec, spec, spec, tf.TensorSpec([None, None], tf.bool)],
            )
            advantages, returns = fn(_REWARDS, _VALUES, _DISCOUNTS, _DONES)
        else:
            advantages, returns = fn(_REWARDS, _VALUES, _DISCOUNTS, _DONES, 0.95)
        expected_advantages, expected_returns = _reference_gae(
            _REWARDS, _VALUES, _DISCOUNTS, _DONES, 0.95
        )
        self.assertAllClose(advantages, expected_advantages)
        self.assertAllClose(returns, expected_returns)
        # Nothing flows back across the discount-0 step or the cut.
        self.assertAllClose(returns[0, 2], _REWARDS[0, 2])
        self.assertAllClose(returns[1, 3], _REWARDS[1, 3])
        # The last step bootstraps from the value of the state after it.
        self.assertAllClose(returns[0, 5], 1.0 + 0.6 * 3.0)

    def test_lambda_returns_stop_gradient(self):
        values = tf.Variable(_VALUES)
        with tf.GradientTape() as tape:
            advantages, returns = returns_lib.lambda_returns(
                _REWARDS, values, _DISCOUNTS, _DONES, 0.9
            )
            total = tf.reduce_sum(advantages) + tf.reduce_sum(returns)
        self.assertIsNone(tape.gradient(total, values))


if __name__ == "__main__":
    absltest.main()

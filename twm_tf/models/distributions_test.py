"""Tests for the latent, reward, discount and policy distributions."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.models import distributions


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class LatentTest(testing.TestCase):
    def test_shapes_entropy_and_cross_entropy_by_hand(self):
        probs = np.array([[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]], np.float32)
        other = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], np.float32)
        q = distributions.latent(tf.math.log(probs[None]))
        p = distributions.latent(tf.math.log(other[None]))
        self.assertEqual(q.event_shape, (2, 4))
        self.assertEqual(q.batch_shape, (1,))
        # Both sum over the two variables.
        self.assertAllClose(q.entropy(), [-np.sum(probs * np.log(probs))])
        self.assertAllClose(p.cross_entropy(q), [-np.sum(other * np.log(probs))])

    def test_sample_is_one_hot_and_seeded(self):
        logits = tf.random.normal([6, 32, 32])
        sample = distributions.sample_latent(logits, tf.constant([7, 8], tf.int64))
        self.assertEqual(sample.dtype, tf.float32)
        self.assertAllEqual(tf.reduce_sum(sample, -1), tf.ones([6, 32]))
        self.assertAllEqual(tf.reduce_max(sample, -1), tf.ones([6, 32]))
        self.assertAllEqual(
            tf.reduce_sum(tf.cast(sample == 0.0, tf.int32), -1), tf.fill([6, 32], 31)
        )
        self.assertAllEqual(
            sample, distributions.sample_latent(logits, tf.constant([7, 8], tf.int64))
        )
        self.assertNotAllEqual(sample, distributions.sample_latent(logits, tf.constant([7, 9])))

    def test_sample_frequencies_match_probabilities(self):
        probs = np.array([0.1, 0.2, 0.7], np.float32)
        logits = tf.broadcast_to(tf.math.log(probs), [4_000, 5, 3])
        sample = distributions.sample_latent(logits, tf.constant([0, 1]))
        frequencies = tf.reduce_mean(tf.reshape(sample, [-1, 3]), axis=0)
        # 20,000 draws: the standard error is <= 0.0035.
        self.assertAllClose(frequencies, probs, atol=0.015)

    def test_straight_through_gradient_is_that_of_the_probabilities(self):
        logits = tf.constant(np.random.default_rng(0).normal(size=(3, 2, 5)), tf.float32)
        upstream = tf.constant(np.random.default_rng(1).normal(size=(3, 2, 5)), tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(logits)
            sampled = tf.reduce_sum(
                upstream * distributions.sample_latent(logits, tf.constant([1, 2]))
            )
            soft = tf.reduce_sum(upstream * tf.nn.softmax(logits))
        self.assertAllClose(tape.gradient(sampled, logits), tape.gradient(soft, logits))

    @parameterized.parameters(False, True)
    def test_sample_without_straight_through_is_the_same_sample(self, jit_compile):
        logits = tf.random.normal([5, 32, 32])
        seed = tf.constant([3, 4], tf.int64)
        sample = tf.function(distributions.sample_latent, jit_compile=jit_compile)
        plain = sample(logits, seed, straight_through=False)
        self.assertAllEqual(plain, sample(logits, seed))
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(distributions.sample_latent(logits, seed, straight_through=False))
        self.assertIsNone(tape.gradient(total, logits))

    def test_sample_compiles_with_xla_and_int64_seeds(self):
        logits = tf.random.normal([4, 3, 5])
        compiled = tf.function(distributions.sample_latent, jit_compile=True)
        sample = compiled(logits, tf.constant([5, 6], tf.int64))
        self.assertAllEqual(tf.reduce_sum(sample, -1), tf.ones([4, 3]))

    def test_mode_is_argmax(self):
        logits = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
        mode = distributions.latent_mode(tf.constant(logits))
        self.assertEqual(mode.dtype, tf.float32)
        self.assertAllEqual(mode, np.eye(7, dtype=np.float32)[np.argmax(logits, axis=-1)])


class HeadsTest(testing.TestCase):
    def test_reward_nll_is_the_unit_gaussian(self):
        nll = -distributions.reward(tf.constant([0.5, -1.0])).log_prob(tf.constant([0.0, 1.0]))
        constant = 0.5 * math.log(2 * math.pi)
        self.assertAllClose(nll, [0.125 + constant, 2.0 + constant])

    def test_discount_takes_soft_targets(self):
        logits = np.array([2.0, 0.0, -3.0], np.float32)
        targets = np.array([0.99, 0.0, 0.99], np.float32)
        head = distributions.discount(tf.constant(logits))
        p = 1 / (1 + np.exp(-logits))
        self.assertAllClose(head.mean(), p)
        self.assertAllClose(
            -head.log_prob(targets), -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
        )


class PolicyTest(testing.TestCase):
    def test_log_prob_and_entropy_by_hand(self):
        logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -20.0]], np.float32)
        policy = distributions.policy(tf.constant(logits))
        probs = _softmax(logits)
        self.assertAllClose(policy.log_prob([2, 0]), np.log([probs[0, 2], probs[1, 0]]))
        self.assertAllClose(policy.entropy(), -np.sum(probs * np.log(probs), axis=-1))

    def test_sample_actions_follows_the_policy(self):
        logits = tf.math.log([[0.1, 0.2, 0.7]] * 20_000)
        seed = tf.constant([3, 4], tf.int64)
        actions = distributions.sample_actions(logits, seed).numpy()
        self.assertEqual(actions.dtype, np.int32)
        frequencies = np.bincount(actions, minlength=3) / len(actions)
        self.assertAllClose(frequencies, [0.1, 0.2, 0.7], atol=0.015)
        self.assertAllEqual(actions, distributions.sample_actions(logits, seed))  # seeded
        compiled = tf.function(distributions.sample_actions, jit_compile=True)
        self.assertAllClose(
            np.bincount(compiled(logits, seed), minlength=3) / 20_000, [0.1, 0.2, 0.7], atol=0.015
        )


if __name__ == "__main__":
    absltest.main()

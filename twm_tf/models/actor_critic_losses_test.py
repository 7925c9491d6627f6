"""Hand-computed tests of the actor's and the critic's losses."""

import math

import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.models import actor_critic_losses as losses
from twm_tf.models import entropy as entropy_lib


class LossesTest(testing.TestCase):
    @parameterized.named_parameters(
        ("above", 0.5, 4, 0.1, 0.0, 0.0),
        ("below", 0.05, 4, 0.1, 0.1 - 0.05 / math.log(4), -1.0 / math.log(4)),
        ("zero", 0.0, 18, 0.3, 0.3, -1.0 / math.log(18)),
    )
    def test_thresholded_entropy_loss(self, entropy, num_actions, threshold, loss, grad):
        entropy = tf.Variable(entropy)
        with tf.GradientTape() as tape:
            value = entropy_lib.thresholded_entropy_loss(entropy, num_actions, threshold)
        self.assertAllClose(value, loss)
        self.assertAllClose(tape.gradient(value, entropy), grad)

    def test_thresholded_entropy_loss_is_linear_below_threshold(self):
        entropies = tf.linspace(0.0, 0.1 * math.log(6), 5)
        losses = entropy_lib.thresholded_entropy_loss(entropies, 6, 0.1)
        self.assertAllClose(losses, 0.1 - entropies / math.log(6))

    def test_actor_loss_hand_computed(self):
        config = config_lib.debug(entropy_coef=0.5, entropy_threshold=0.9)
        logits = tf.constant([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # probs [1/4, 3/4], [1/2, 1/2]
        actions = tf.constant([[1, 0]])
        advantages = tf.constant([[2.0, -1.0]])
        weights = tf.constant([[1.0, 0.5]])
        loss, metrics = losses.actor_loss(logits, actions, advantages, weights, config)

        reinforce = (1.0 * math.log(0.75) * 2.0 + 0.5 * math.log(0.5) * -1.0) / 2
        entropy_0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
        entropy = (1.0 * entropy_0 + 0.5 * math.log(2.0)) / 2
        entropy_term = 0.9 - entropy / math.log(2.0)
        self.assertGreater(entropy_term, 0.0)
        self.assertAllClose(loss, -reinforce + 0.5 * entropy_term)
        self.assertAllClose(metrics["actor/reinforce"], reinforce)
        self.assertAllClose(metrics["actor/entropy"], entropy)

        # Above the threshold only the REINFORCE term is left.
        loss, _ = losses.actor_loss(
            logits, actions, advantages, weights, config.replace(entropy_threshold=0.1)
        )
        self.assertAllClose(loss, -reinforce)

    def test_entropy_actor_loss_hand_computed(self):
        config = config_lib.debug(entropy_coef=0.5)
        logits = tf.constant([[[0.0, math.log(3.0)], [0.0, 0.0]]])
        loss, metrics = losses.entropy_actor_loss(logits, tf.ones([1, 2]), config)
        entropy_0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
        normalized = (entropy_0 + math.log(2.0)) / 2 / math.log(2.0)
        self.assertAllClose(loss, -0.5 * normalized)
        self.assertAllClose(metrics["actor/normalized_entropy"], normalized)

    def test_critic_loss_hand_computed(self):
        values = tf.constant([[1.0, 2.0]])
        returns = tf.constant([[0.0, 4.0]])
        weights = tf.constant([[1.0, 0.5]])
        loss, metrics = losses.critic_loss(values, returns, weights)
        self.assertAllClose(loss, (1.0 * 0.5 * 1.0 + 0.5 * 0.5 * 4.0) / 2)
        self.assertAllClose(metrics["critic/abs_error"], 1.5)


if __name__ == "__main__":
    absltest.main()

"""Tests for the actor and critic networks and their update step."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import seeding
from twm_tf.dev import testing
from twm_tf.models import actor_critic as ac_lib
from twm_tf.models import actor_critic_losses as losses
from twm_tf.models import distributions
from twm_tf.models import returns as returns_lib


def _one_hot_z(shape, config):
    classes = tf.random.uniform(
        [*shape, config.latent_vars], maxval=config.latent_classes, dtype=tf.int32
    )
    return tf.one_hot(classes, config.latent_classes)


class NetworksTest(testing.TestCase):
    def test_shapes_and_paper_parameter_counts(self):
        config = config_lib.atari100k()
        actor = ac_lib.Actor.from_twm_config(config, 18)
        critic = ac_lib.Critic.from_twm_config(config)
        z = _one_hot_z([2, 3], config)
        self.assertEqual(actor(z).shape, [2, 3, 18])
        self.assertEqual(critic(z).shape, [2, 3])
        self.assertEqual(actor(z[0, 0]).shape, [18])
        # 1,024 -> 4 x 512 -> A: 1,312,768 + 513 A.
        self.assertEqual(actor.count_params(), 1_312_768 + 513 * 18)
        self.assertEqual(critic.count_params(), 1_312_768 + 513)
        for layer in critic._mlp.layers:
            self.assertAllEqual(layer.bias, tf.zeros_like(layer.bias))

    def test_from_config_equals_explicit_hyperparameters(self):
        config = config_lib.debug(latent_vars=3, latent_classes=5, ac_hidden=(8, 6))
        sizes = dict(latent_vars=3, latent_classes=5, hidden=(8, 6))
        with seeding.keras_weights(1):
            networks = [
                ac_lib.Actor.from_twm_config(config, 4),
                ac_lib.Critic.from_twm_config(config),
            ]
        with seeding.keras_weights(1):
            explicit = [ac_lib.Actor(num_actions=4, **sizes), ac_lib.Critic(**sizes)]
        for network, other in zip(networks, explicit, strict=True):
            self.assertEqual(network.name, other.name)
            self.assertEqual([layer.units for layer in other._mlp.layers][:2], [8, 6])
            for a, b in zip(network.weights, other.weights, strict=True):
                self.assertEqual(a.path, b.path)
                self.assertAllEqual(a, b)
        self.assertEqual(explicit[0].num_actions, 4)

    def test_wrong_latent_shape_raises(self):
        actor = ac_lib.Actor.from_twm_config(config_lib.debug(), 3)
        with self.assertRaisesRegex(ValueError, "latent_vars, latent_classes"):
            actor(tf.zeros([2, 16]))
        with self.assertRaisesRegex(ValueError, r"classes of shape \[..., 4\] \(latent_vars\)"):
            actor.from_classes(tf.zeros([2, 5], tf.int32))

    def test_from_classes_equals_the_one_hot_product(self):
        config = config_lib.debug()
        actor = ac_lib.Actor.from_twm_config(config, 5)
        # Nonzero biases: the gathered rows must get the first layer's bias once, not per row.
        for layer in actor._mlp.layers:
            layer.bias.assign(tf.random.stateless_normal(layer.bias.shape, [0, 1]))
        classes = tf.random.stateless_uniform(
            [2, 3, config.latent_vars], [1, 2], maxval=config.latent_classes, dtype=tf.int32
        )
        z = tf.one_hot(classes, config.latent_classes)  # [2, 3, V, C]
        self.assertAllClose(actor.from_classes(classes), actor(z), atol=1e-5)
        self.assertAllClose(actor.from_classes(classes[0, 0]), actor(z[0, 0]), atol=1e-5)
        compiled = tf.function(actor.from_classes, jit_compile=True)
        self.assertAllClose(compiled(classes), actor(z), atol=1e-5)

    def test_checkpoint_restores_every_weight(self):
        config = config_lib.debug(ac_hidden=(8, 8))
        source, target = ac_lib.ActorCritic(config, 3), ac_lib.ActorCritic(config, 3)
        # Networks alone: their weights must not reach the checkpoint only through the optimizer.
        path = tf.train.Checkpoint(actor=source.actor, critic=source.critic).save(
            self.create_tempdir().full_path + "/ckpt"
        )
        tf.train.Checkpoint(actor=target.actor, critic=target.critic).restore(
            path
        ).assert_consumed()
        for a, b in zip(
            source.actor.weights + source.critic.weights,
            target.actor.weights + target.critic.weights,
            strict=True,
        ):
            self.assertAllEqual(a, b)


class MixedPrecisionTest(testing.TestCase):
    def test_networks_stay_float32_under_mixed_bfloat16(self):
        previous = keras.mixed_precision.global_policy()
        self.addCleanup(keras.mixed_precision.set_global_policy, previous)
        config = config_lib.debug(ac_hidden=(64, 64))
        keras.mixed_precision.set_global_policy("float32")
        reference = ac_lib.ActorCritic(config, 3)
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        mixed = ac_lib.ActorCritic(config, 3)
        for network, copy in ((mixed.actor, reference.actor), (mixed.critic, reference.critic)):
            copy.set_weights(network.get_weights())
            self.assertEqual(network.compute_dtype, "float32")
            for layer in network._mlp.layers:
                self.assertEqual(layer.compute_dtype, "float32", layer.name)
        # Soft z would lose precision in any bfloat16 cast; one-hot z arrives as bfloat16.
        soft = tf.nn.softmax(tf.random.normal([4, 5, config.latent_vars, config.latent_classes]))
        one_hot = _one_hot_z([4, 5], config)
        for z, z_mixed in ((soft, soft), (one_hot, tf.cast(one_hot, tf.bfloat16))):
            for network, copy in ((mixed.actor, reference.actor), (mixed.critic, reference.critic)):
                output = network(z_mixed)
                self.assertEqual(output.dtype, tf.float32)
                self.assertAllClose(output, copy(z), atol=1e-6, rtol=0.0)
        rewards, discounts = tf.zeros([4, 4]), tf.fill([4, 4], 0.9)
        actions, dones = tf.zeros([4, 4], tf.int32), tf.zeros([4, 4], tf.bool)
        metrics = mixed.update(
            z=tf.cast(one_hot, tf.bfloat16),
            actions=actions,
            rewards=rewards,
            discounts=discounts,
            dones=dones,
        )
        for name, value in metrics.items():
            self.assertEqual(value.dtype, tf.float32, name)
            self.assertTrue(np.isfinite(value.numpy()), name)


class UpdateTest(testing.TestCase):
    def _batch(self, config, num_rows=4, horizon=3, num_actions=3):
        z = _one_hot_z([num_rows, horizon + 1], config)
        actions = tf.random.uniform([num_rows, horizon], maxval=num_actions, dtype=tf.int32)
        rewards = tf.random.normal([num_rows, horizon])
        discounts = tf.random.uniform([num_rows, horizon], 0.5, 1.0)
        dones = tf.constant([[False, True, False]] + [[False] * horizon] * (num_rows - 1))
        restarts = tf.constant([[True, False, True]] + [[True, False, False]] * (num_rows - 1))
        return z, actions, rewards, discounts, dones, restarts

    def test_gradient_flow(self):
        config = config_lib.debug()
        ac = ac_lib.ActorCritic(config, 3)
        z, actions, rewards, discounts, dones, restarts = self._batch(config)
        weights = returns_lib.discount_weights(discounts, restarts)
        with tf.GradientTape(persistent=True) as tape:
            values = ac.critic(z)
            advantages, returns = returns_lib.lambda_returns(
                rewards, values, discounts, dones, 0.95
            )
            logits = ac.actor(z[:, :-1])
            actor, _ = losses.actor_loss(logits, actions, advantages, weights, config)
            critic, _ = losses.critic_loss(values[:, :-1], returns, weights)
        actor_vars, critic_vars = ac.actor.trainable_variables, ac.critic.trainable_variables
        for grad in tape.gradient(actor, actor_vars) + tape.gradient(critic, critic_vars):
            self.assertIsNotNone(grad)
            self.assertGreater(tf.reduce_sum(tf.abs(grad)), 0.0)
        for grad in tape.gradient(actor, critic_vars) + tape.gradient(critic, actor_vars):
            self.assertIsNone(grad)

    def test_update_uses_the_pre_update_critic(self):
        # A large critic step makes post-update values visibly different.
        config = config_lib.debug(critic_lr=0.1, ac_clip=100.0, entropy_threshold=0.9)
        ac = ac_lib.ActorCritic(config, 3)
        z, actions, rewards, discounts, dones, restarts = self._batch(config)
        weights = returns_lib.discount_weights(discounts, restarts)

        def expected_losses():
            values = ac.critic(z)
            advantages, returns = returns_lib.lambda_returns(
                rewards, values, discounts, dones, config.lam
            )
            logits = ac.actor(z[:, :-1])
            actor, _ = losses.actor_loss(logits, actions, advantages, weights, config)
            critic, _ = losses.critic_loss(values[:, :-1], returns, weights)
            return actor, critic

        actor_before, critic_before = expected_losses()
        metrics = tf.function(ac.update)(
            z=z,
            actions=actions,
            rewards=rewards,
            discounts=discounts,
            dones=dones,
            restarts=restarts,
        )
        self.assertAllClose(metrics["actor/loss"], actor_before)
        self.assertAllClose(metrics["critic/loss"], critic_before)
        # Both networks moved, and the post-update critic would have given another actor loss.
        actor_after, critic_after = expected_losses()
        self.assertLess(critic_after, critic_before)
        self.assertNotAllClose(actor_after, actor_before, atol=1e-4)
        self.assertEqual(int(ac.actor_optimizer.adam.iterations), 1)
        self.assertEqual(int(ac.critic_optimizer.adam.iterations), 1)

    def test_pretraining_update_raises_entropy(self):
        config = config_lib.debug(actor_lr=1e-2)
        ac = ac_lib.ActorCritic(config, 4)
        z, _, rewards, discounts, dones, _ = self._batch(config, num_actions=4)
        update = tf.function(
            lambda: ac.update(
                z=z,
                actions=None,
                rewards=rewards,
                discounts=discounts,
                dones=dones,
                entropy_only=True,
            )
        )
        first = update()["actor/normalized_entropy"]
        for _ in range(20):
            last = update()["actor/normalized_entropy"]
        self.assertGreater(last, first)

    def test_bandit_learns_the_rewarded_action(self):
        config = config_lib.debug(actor_lr=3e-3, critic_lr=1e-2)
        num_actions, rewarded, batch = 3, 2, 64
        ac = ac_lib.ActorCritic(config, num_actions)

        @tf.function
        def train_step(step):
            z = _one_hot_z([batch, 2], config)
            actions = distributions.sample_actions(ac.actor(z[:, 0]), tf.stack([step, 7]))[:, None]
            rewards = tf.cast(actions == rewarded, tf.float32)
            zeros = tf.zeros([batch, 1])
            return ac.update(
                z=z,
                actions=actions,
                rewards=rewards,
                discounts=zeros,
                dones=tf.zeros([batch, 1], tf.bool),
            )

        for step in range(300):
            train_step(tf.constant(step))
        probs = tf.nn.softmax(ac.actor(_one_hot_z([256], config)))
        self.assertGreater(tf.reduce_mean(probs[:, rewarded]), 0.9)


if __name__ == "__main__":
    absltest.main()

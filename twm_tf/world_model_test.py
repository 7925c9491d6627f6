"""Tests of the joint world-model update on real recorded frames."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.replay import buffer as replay_lib


def _buffer(game: str, config) -> replay_lib.ReplayBuffer:
    rec = testdata.load(game)
    buffer = replay_lib.ReplayBuffer(capacity=len(rec.frames), tau=config.replay_tau, seed=0)
    testdata.add_to(buffer, rec)
    return buffer


def _window(batch: replay_lib.Batch) -> world_model_lib.Batch:
    return world_model_lib.Batch.from_replay(batch)


class WorldModelTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.config = config_lib.debug(
            dyn_dropout=0.0, wm_batch=8, seq_len=6, obs_lr=1e-3, dyn_lr=1e-3
        )
        self.model = world_model_lib.WorldModel(self.config, num_actions=4)
        self.model.build()
        self.batch = _window(
            _buffer("Breakout", self.config).sample(8, world_model_lib.replay_steps(self.config))
        )
        self.seed = tf.constant([1, 2], tf.int64)

    def test_fits_a_real_sequence(self):
        # Breakout windows with rewards and life losses, one fixed batch: the latent cross-entropy
        # and the reward NLL must both fall clearly.
        step = tf.function(self.model.train_step)
        first, _ = step(self.batch, self.seed)
        for i in range(150):
            metrics, _ = step(self.batch, tf.constant([i, 0], tf.int64))
        self.assertLess(float(metrics["dyn/latent"]), 0.5 * float(first["dyn/latent"]))
        # The reward NLL's floor is the unit Gaussian's constant 0.5 ln(2 pi): halve the excess.
        floor = 0.5 * math.log(2 * math.pi)
        self.assertLess(
            float(metrics["dyn/reward"]) - floor, 0.5 * (float(first["dyn/reward"]) - floor)
        )
        self.assertLess(float(metrics["obs/recon"]), 0.5 * float(first["obs/recon"]))

    def test_losses_train_their_own_model(self):
        # The dynamics loss must not reach the VAE (its input and targets are stop-gradient) and
        # the observation loss must not reach the Transformer (its prior is stop-gradient).
        with tf.GradientTape(persistent=True) as tape:
            obs_loss, dyn_loss, _, _ = self.model.losses(self.batch, self.seed, training=False)
        obs_vars = self.model.observation.trainable_variables
        dyn_vars = self.model.dynamics.trainable_variables
        self.assertTrue(all(g is None for g in tape.gradient(dyn_loss, obs_vars)))
        self.assertTrue(all(g is None for g in tape.gradient(obs_loss, dyn_vars)))
        self.assertGreater(float(tf.linalg.global_norm(tape.gradient(dyn_loss, dyn_vars))), 0)

    def test_vae_trains_on_the_trained_steps_only(self):
        # The context step and the last target feed the dynamics model but not the VAE loss:
        # without the consistency term (which depends on them through the prediction), other
        # frames there leave the observation loss unchanged; other trained frames change it.
        model = world_model_lib.WorldModel(self.config.replace(alpha2=0.0), num_actions=4)
        model.build()
        frames = self.batch.frames
        flipped = tf.reverse(frames, axis=[-1])
        edges = tf.concat([flipped[:, :1], frames[:, 1:-1], flipped[:, -1:]], axis=1)
        middle = tf.concat([frames[:, :2], flipped[:, 2:3], frames[:, 3:]], axis=1)
        obs_loss = [
            float(model.losses(self.batch._replace(frames=f), self.seed, training=False)[0])
            for f in (frames, edges, middle)
        ]
        self.assertEqual(obs_loss[0], obs_loss[1])
        self.assertNotEqual(obs_loss[0], obs_loss[2])

    def test_latent_term_trains_the_next_latent_head(self):
        # The Fix of docs/spec.md, "Dynamics loss": with the reward and discount terms off, the
        # dynamics loss is the latent cross-entropy alone and its gradient must reach the
        # next-latent head.
        config = self.config.replace(beta1=0.0, beta2=0.0)
        model = world_model_lib.WorldModel(config, num_actions=4)
        model.build()
        with tf.GradientTape() as tape:
            _, dyn_loss, metrics, _ = model.losses(self.batch, self.seed, training=False)
        self.assertAllClose(dyn_loss, metrics["dyn/latent"])
        grads = tape.gradient(dyn_loss, model.dynamics.trainable_variables)
        head = [
            g
            for g, v in zip(grads, model.dynamics.trainable_variables, strict=True)
            if "latent" in v.path
        ]
        self.assertNotEmpty(head)
        self.assertGreater(float(tf.linalg.global_norm(head)), 0.0)

    def test_consistency_skips_steps_without_prediction(self):
        # Every step after a done has no prediction of its latent: the term must be empty (0).
        batch = self.batch._replace(dones=tf.ones_like(self.batch.dones))
        _, _, metrics, _ = self.model.losses(batch, self.seed, training=False)
        self.assertEqual(float(metrics["obs/consistency"]), 0.0)
        _, _, metrics, _ = self.model.losses(self.batch, self.seed, training=False)
        self.assertGreater(float(metrics["obs/consistency"]), 0.0)

    def test_vae_backward_pass_follows_the_dynamics_backward_pass(self):
        # Memory: the VAE's gradient ops wait until the Transformer's gradients exist.
        graph = tf.function(self.model.gradients).get_concrete_function(self.batch, self.seed).graph
        dyn_grads = {
            op.name
            for op in graph.get_operations()
            if op.name.startswith("gradient_tape/") and "transformer" in op.name
        }
        self.assertNotEmpty(dyn_grads)
        vae_grads = [op for op in graph.get_operations() if op.type == "Conv2DBackpropFilter"]
        self.assertNotEmpty(vae_grads)
        for op in vae_grads:
            self.assertTrue(dyn_grads & testing.ancestor_names(op), op.name)

    def test_pretraining_steps_update_one_model_each(self):
        def snapshot():
            return [
                [v.numpy() for v in m.trainable_variables]
                for m in (self.model.observation, self.model.dynamics)
            ]

        def changed(before, after):
            return [
                any(not np.array_equal(a, b) for a, b in zip(x, y)) for x, y in zip(before, after)
            ]

        before = snapshot()
        self.model.observation_step(self.batch.frames[:, 0], self.seed)
        middle = snapshot()
        self.assertEqual(changed(before, middle), [True, False])
        self.model.dynamics_step(self.batch, self.seed)
        self.assertEqual(changed(middle, snapshot()), [False, True])


if __name__ == "__main__":
    absltest.main()

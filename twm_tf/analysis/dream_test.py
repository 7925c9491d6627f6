"""Tests of imagined trajectories, their real counterparts and the attention maps."""

import json
import os
import tempfile

import imageio
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf.analysis import dream
from twm_tf.dev import testing
from twm_tf.envs import atari
from twm_tf.models import distributions
from twm_tf.run import restore

_PONG_ACTIONS = 6
_STEPS = 5
_WARMUP = 12


class DreamTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        """A Pong debug run dir (random weights) and one dream from it."""
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.config = config_lib.debug(game="Pong", dyn_dropout=0.0)
        run_dir = os.path.join(cls.root, "run")
        testing.untrained_run(run_dir, cls.config, _PONG_ACTIONS)
        cls.models = restore.load_run(run_dir)
        cls.dream = dream.dream_from_run(cls.models, steps=_STEPS, warmup=_WARMUP, seed=1)

    @classmethod
    def tearDownClass(cls):
        tf.io.gfile.rmtree(cls.root)

    def test_shapes(self):
        d, config = self.dream, self.config
        self.assertEqual(d.imagined.shape, (_STEPS + 1, 64, 64))
        self.assertEqual(d.real.shape, (_STEPS + 1, 64, 64))
        self.assertEqual(d.imagined.dtype, np.uint8)
        for field in (d.actions, d.rewards, d.discounts, d.real_rewards, d.real_dones):
            self.assertEqual(field.shape, (_STEPS,))
        keys = 3 * (config.memory_steps + 2)  # cache blocks r, z, a of steps t-1-M..t-1, then t
        self.assertEqual(d.attention.shape, (_STEPS, config.dyn_layers, config.dyn_heads, keys))
        self.assertLen(d.tokens, keys)
        self.assertEqual(d.tokens[:3], ("r-6", "z-5", "a-5"))
        self.assertEqual(d.tokens[-3:], ("r-1", "z0", "a0"))

    def test_attention_rows_sum_to_one(self):
        self.assertAllClose(self.dream.attention.sum(-1), np.ones(self.dream.attention.shape[:3]))
        self.assertTrue(np.all(self.dream.attention >= 0))

    def test_attention_equals_the_window_pass(self):
        # The cached steps' attention of a_t equals `call` over the whole real + imagined
        # sequence at a_t's row (the window drops the cache's oldest slot r_{t-2-M}, which the
        # action token never sees).
        run, config = self.models, self.config
        env = atari.from_config(config, training=False, seed=1)
        context, start_obs = dream.warm_up(run, env, _WARMUP, np.random.default_rng(1))
        env.close()
        d = dream.imagine(run, context, start_obs, _STEPS, seed=4, latent="mode")
        m = config.memory_steps
        obs_model, dynamics = run.world_model.observation, run.world_model.dynamics
        z_context = distributions.latent_mode(obs_model.encode(context.obs[-m:])).numpy()
        z = np.concatenate([z_context, d.latents[:-1]])[None]  # [1, M + H, V, C]
        actions = np.concatenate([context.actions[-m:], d.actions])[None]
        rewards = np.concatenate([np.tanh(context.rewards[-m:]), d.rewards])[None]
        dones = np.concatenate([context.dones[-m:], np.zeros(_STEPS, bool)])[None]
        out = dynamics(z, actions, rewards.astype(np.float32), dones, return_attention=True)
        self.assertAllClose(tf.sigmoid(out.discount_logit[0, -1]), d.discounts[-1], atol=1e-6)
        keys = d.attention.shape[-1] - 1
        window = np.stack([np.asarray(w[0, :, -1, -keys:]) for w in out.attention])
        self.assertAllClose(d.attention[-1, :, :, 1:], window, atol=1e-5)

    def test_real_frames_replay_the_imagined_actions(self):
        # Restoring the saved start state and taking the same actions gives the same frames.
        env = atari.from_config(self.config, training=False, seed=1)
        _, start_obs = dream.warm_up(self.models, env, _WARMUP, np.random.default_rng(1))
        state = env.get_state()
        first = dream.replay_real(env, state, start_obs, self.dream.actions)
        again = dream.replay_real(env, state, start_obs, self.dream.actions)
        env.close()
        self.assertAllEqual(first[0], self.dream.real)
        self.assertAllEqual(again[0], self.dream.real)
        self.assertAllEqual(self.dream.real[0], start_obs[-1])

    def test_writes_strip_gif_and_attention(self):
        out = self.create_tempdir().full_path
        paths = dream.write(self.dream, self.models.action_meanings, out)
        for path in paths.values():
            self.assertTrue(os.path.exists(path), path)
        self.assertLen(imageio.mimread(paths["dream.gif"]), _STEPS + 1)
        self.assertAllClose(np.load(paths["attention.npy"]), self.dream.attention)
        with open(paths["dream.json"]) as f:
            summary = json.load(f)
        self.assertLen(summary["actions"], _STEPS)
        self.assertTrue(set(summary["actions"]) <= set(self.models.action_meanings))
        self.assertEqual(summary["attention_png_steps"], [1, 2, 4, 5])
        self.assertGreater(os.path.getsize(paths["strip.png"]), 5_000)


if __name__ == "__main__":
    absltest.main()

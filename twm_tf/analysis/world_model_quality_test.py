"""Tests of the open-loop world-model evaluation on debug run dirs (untrained and fitted)."""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.analysis import world_model_quality
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.models import distributions
from twm_tf.replay import buffer as replay_lib
from twm_tf.run import restore

_HORIZON = 3
_BREAKOUT_ACTIONS = 4


def _fit(wm: world_model_lib.WorldModel, config: config_lib.Config, updates: int) -> None:
    """World-model updates on windows of the recorded Breakout sequence."""
    recording = testdata.load("Breakout")
    buffer = replay_lib.ReplayBuffer(capacity=len(recording.frames), tau=config.replay_tau, seed=0)
    testdata.add_to(buffer, recording)
    step = tf.function(wm.train_step)
    for i in range(updates):
        batch = buffer.sample(config.wm_batch, world_model_lib.replay_steps(config))
        step(world_model_lib.Batch.from_replay(batch), tf.constant([i, 0], tf.int64))


class WorldModelQualityTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        """Two Breakout debug run dirs: untrained, and fitted by 300 world-model updates."""
        super().setUpClass()
        tf.keras.utils.set_random_seed(0)
        cls.root = tempfile.mkdtemp()
        cls.config = config_lib.debug(
            game="Breakout", dyn_dropout=0.0, wm_batch=8, seq_len=6, obs_lr=1e-3, dyn_lr=1e-3
        )
        wm, ac = testing.untrained_models(cls.config, _BREAKOUT_ACTIONS)
        cls.dirs = {name: os.path.join(cls.root, name) for name in ("untrained", "fitted")}
        restore.write_run(cls.dirs["untrained"], cls.config, wm, ac)
        _fit(wm, cls.config, updates=300)
        restore.write_run(cls.dirs["fitted"], cls.config, wm, ac)
        cls.data = world_model_quality.from_recording(testdata.load("Breakout"), 4)
        cls.runs = {name: restore.load_run(path) for name, path in cls.dirs.items()}
        cls.summaries = {
            name: world_model_quality.evaluate(run, cls.data, _HORIZON, "recorded:Breakout")
            for name, run in cls.runs.items()
        }

    @classmethod
    def tearDownClass(cls):
        tf.io.gfile.rmtree(cls.root)

    def test_writes_json_and_plot_per_horizon(self):
        out = self.create_tempdir().full_path
        json_path, png_path = world_model_quality.write(self.summaries["fitted"], out)
        with open(json_path) as f:
            summary = json.load(f)
        self.assertEqual([row["horizon"] for row in summary["horizons"]], [1, 2, 3])
        steps = len(self.data.actions)
        self.assertEqual(summary["steps"], steps)
        self.assertEqual(summary["starts"], steps - self.config.memory_steps - _HORIZON)
        self.assertEqual(summary["reward_scale"], "tanh")
        self.assertGreater(os.path.getsize(png_path), 10_000)

    def test_episode_ends_mask_targets(self):
        # z_{s+k} counts iff no done in s..s+k-1; transition s+k-1 iff none in s..s+k-2.
        dones = self.data.dones
        starts = np.arange(self.config.memory_steps, len(dones) - _HORIZON)
        for row in self.summaries["fitted"]["horizons"]:
            k = row["horizon"]
            self.assertEqual(row["latent_count"], sum(not dones[s : s + k].any() for s in starts))
            self.assertEqual(
                row["transition_count"], sum(not dones[s : s + k - 1].any() for s in starts)
            )
        first = self.summaries["fitted"]["horizons"][0]
        self.assertEqual(first["terminals"], int(self.data.terminals[starts].sum()))
        self.assertGreater(first["terminals"], 0)  # Breakout's recording loses lives.

    def test_one_step_prediction_equals_the_window_pass(self):
        # Horizon 1 reads real z_{s-C..s}: the same as `call` on that window, at its last step.
        wm = self.runs["fitted"].world_model
        logits = wm.observation.encode(self.data.obs).numpy()
        predictions = world_model_quality.open_loop(wm, self.data, logits, horizon=1)
        s, c = 150, self.config.memory_steps
        window = slice(s - c, s + 1)
        out = wm.dynamics(
            distributions.latent_mode(logits[None, window]),
            self.data.actions[None, window],
            np.tanh(self.data.rewards[None, window]),
            self.data.dones[None, window],
        )
        row = int(np.flatnonzero(predictions.starts == s)[0])
        self.assertAllClose(predictions.next_logits[row, 0], out.next_logits[0, -1], atol=1e-5)
        self.assertAllClose(predictions.reward[row, 0], out.reward[0, -1], atol=1e-5)

    def test_untrained_model_is_no_better_than_baselines(self):
        first = self.summaries["untrained"]["horizons"][0]
        self.assertLessEqual(first["latent_accuracy"], first["latent_accuracy_repeat"])
        self.assertGreaterEqual(first["latent_xent"], first["latent_xent_uniform"])
        self.assertGreaterEqual(first["recon_mse"], first["recon_mse_repeat"])
        self.assertGreaterEqual(first["reward_mae"], first["reward_mae_mean"])
        self.assertGreaterEqual(first["reward_mse"], first["reward_mse_mean"])

    def test_fitted_model_predicts_better(self):
        fitted, untrained = (self.summaries[n]["horizons"][0] for n in ("fitted", "untrained"))
        self.assertGreater(fitted["latent_accuracy"], untrained["latent_accuracy"] + 0.2)
        self.assertLess(fitted["latent_xent"], 0.5 * fitted["latent_xent_uniform"])
        self.assertLess(fitted["recon_mse"], 0.1 * untrained["recon_mse"])
        self.assertLess(fitted["reward_mae"], 0.5 * untrained["reward_mae"])
        self.assertLess(fitted["reward_mse"], 0.25 * untrained["reward_mse"])
        for row in (fitted, untrained):  # Jensen: a mean square is at least the squared mean
            self.assertGreaterEqual(row["reward_mse"], row["reward_mae"] ** 2)
            self.assertGreaterEqual(row["reward_mse_mean"], row["reward_mae_mean"] ** 2)

    def test_gain_cis_bracket_the_gains_and_find_the_untrained_model_worse(self):
        pairs = {"recon_mse": "recon_mse_repeat", "latent_xent": "latent_xent_repeat"}
        pairs["reward_mse"] = "reward_mse_mean"
        for name, summary in self.summaries.items():
            row = summary["horizons"][0]
            for key, baseline in pairs.items():
                low, high = row[f"{key}_gain_ci"]
                self.assertBetween(row[baseline] - row[key], low, high, f"{name} {key}")
                if name == "untrained":
                    self.assertLess(high, 0.0, key)

    def test_collects_policy_games_in_the_eval_env(self):
        run = self.runs["untrained"]
        data = world_model_quality.collect(run, steps=20, seed=3)
        self.assertEqual(data.obs.shape, (20, 4, 64, 64))
        self.assertEqual(data.obs.dtype, np.uint8)
        self.assertTrue(np.all((data.actions >= 0) & (data.actions < _BREAKOUT_ACTIONS)))
        summary = world_model_quality.evaluate(run, data, 2, "env", latent="sample")
        self.assertLen(summary["horizons"], 2)
        self.assertEqual(summary["starts"], 20 - self.config.memory_steps - 2)

    def test_too_short_data_raises(self):
        run = self.runs["untrained"]
        short = world_model_quality.Transitions(*(x[:6] for x in self.data))
        with self.assertRaisesRegex(ValueError, "at least"):
            world_model_quality.evaluate(run, short, _HORIZON, "short")


class GainCiTest(absltest.TestCase):
    def test_constant_gain_and_mask(self):
        model, baseline = np.array([1.0, 2.0, 50.0, 3.0]), np.array([1.5, 2.5, 0.0, 3.5])
        mask = np.array([True, True, False, True])
        self.assertEqual(world_model_quality.gain_ci(model, baseline, mask), [0.5, 0.5])
        self.assertIsNone(world_model_quality.gain_ci(model, baseline, np.zeros(4, bool)))

    def test_independent_starts_give_the_mean_and_its_standard_error(self):
        gain = 0.1 + np.random.default_rng(1).standard_normal(2000)
        low, high = world_model_quality.gain_ci(np.zeros(2000), gain, np.ones(2000, bool))
        self.assertBetween(gain.mean(), low, high)
        self.assertBetween(high - low, 0.7 * 3.92 / np.sqrt(2000), 1.3 * 3.92 / np.sqrt(2000))

    def test_correlated_starts_widen_the_interval(self):
        # 20 independent values, each shared by 100 neighbouring starts: the mean's standard
        # error is that of 20 values (~0.22), not of 2,000 (an independent bootstrap's 0.022).
        gain = np.repeat(np.random.default_rng(2).standard_normal(20), 100)
        low, high = world_model_quality.gain_ci(np.zeros(2000), gain, np.ones(2000, bool))
        self.assertGreater(high - low, 0.5)


if __name__ == "__main__":
    absltest.main()

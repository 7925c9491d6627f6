"""The world-model update probe on the debug preset and the Pong fixture."""

import json
import math
import os

from absl.testing import absltest
from absl.testing import flagsaver
import numpy as np
import tensorflow as tf

from tools.tuning import world_model_updates
from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.replay import buffer as replay_lib


def _save(recording: testdata.Recording, path: str) -> None:
    buffer = replay_lib.ReplayBuffer(capacity=len(recording.frames), tau=float("inf"), seed=0)
    testdata.add_to(buffer, recording)
    buffer.save(path)


class WorldModelUpdatesTest(absltest.TestCase):
    def test_log_baseline_and_learning(self):
        directory = self.create_tempdir().full_path
        train, held_out, out = (
            os.path.join(directory, name) for name in ("train.bin", "held_out.bin", "wm.json")
        )
        recording = testdata.load("Pong")
        _save(testdata.Recording(*(field[:300] for field in recording)), train)
        tail = testdata.Recording(*(field[300:].copy() for field in recording))
        tail.is_first[0] = True  # The held-out part starts its own (stack) history.
        _save(tail, held_out)
        with flagsaver.flagsaver(
            preset="debug",
            game="Pong",
            replay=train,
            held_out_replay=held_out,
            held_out_windows=8,
            updates=20,
            measure_every=10,
            out=out,
            **{"config.obs_lr": 1e-3, "config.dyn_lr": 1e-3},
        ):
            world_model_updates.main([])
        with open(out) as f:
            result = json.load(f)
        log = result["log"]
        self.assertEqual([entry["updates"] for entry in log], [0, 10, 20])

        # The baseline predicts the training replay's mean tanh reward on the same fixed windows.
        mean_reward = float(np.mean(np.tanh(recording.rewards[:300])))
        self.assertAlmostEqual(result["mean_reward"], mean_reward, places=6)
        config = config_lib.preset("debug", game="Pong")
        buffer = replay_lib.ReplayBuffer.restore(held_out, seed=10_000)
        batches = world_model_updates.held_out_batches(buffer, config, 8)
        self.assertLen(batches, 2)  # debug's N = 4
        rewards = np.concatenate([np.tanh(b.rewards[:, 1:-1]) for b in batches])
        baseline = float(np.mean(np.square(rewards - mean_reward)))
        for entry in log:
            self.assertAlmostEqual(entry["mean_baseline_mse"], baseline, places=6)
            expected_gain = 1.0 - entry["reward_mse"] / baseline
            self.assertAlmostEqual(entry["reward_gain"], expected_gain, places=6)
            self.assertTrue(math.isfinite(entry["latent_ce"]))
        self.assertLess(log[-1]["latent_ce"], log[0]["latent_ce"])
        self.assertLess(log[-1]["decoder_nll"], log[0]["decoder_nll"])
        self.assertEqual(world_model_lib.replay_steps(config), batches[0].rewards.shape[1] - 1)

    def test_held_out_last_splits_one_replay(self):
        directory = self.create_tempdir().full_path
        path, out = os.path.join(directory, "all.bin"), os.path.join(directory, "wm.json")
        recording = testdata.load("Pong")
        _save(recording, path)
        train, held_out, mean_reward = world_model_updates.replays(path, None, 100, seed=0)
        self.assertEqual((len(train), len(held_out)), (300, 100))
        self.assertAlmostEqual(mean_reward, float(np.mean(np.tanh(recording.rewards[:300]))), 6)
        np.testing.assert_array_equal(
            held_out.observations(np.arange(100))[:, -1], recording.frames[300:]
        )
        np.testing.assert_array_equal(
            train.observations(np.arange(300)), testdata.stacks(recording)[:300]
        )
        batch = held_out.sample_uniform(8, 4)
        index = np.maximum(batch.indices, 0)
        expected = np.where(batch.indices < 0, 0.0, recording.rewards[300:][index])
        np.testing.assert_array_equal(batch.rewards, expected)
        with self.assertRaisesRegex(ValueError, "exactly one"):
            world_model_updates.replays(path, path, 100, seed=0)
        with self.assertRaisesRegex(ValueError, "exactly one"):
            world_model_updates.replays(path, None, None, seed=0)
        with self.assertRaisesRegex(ValueError, r"--held_out_last must be in \(0, 400\)"):
            world_model_updates.replays(path, None, 400, seed=0)
        with flagsaver.flagsaver(
            preset="debug",
            game="Pong",
            replay=path,
            held_out_last=100,
            held_out_windows=4,
            updates=2,
            measure_every=2,
            out=out,
        ):
            world_model_updates.main([])
        with open(out) as f:
            result = json.load(f)
        self.assertEqual(result["held_out_last"], 100)
        self.assertEqual([entry["updates"] for entry in result["log"]], [0, 2])

    def test_reward_mse_is_the_heads_squared_error(self):
        config = config_lib.preset("debug", game="Pong")
        wm, _ = testing.untrained_models(config, num_actions=6)
        buffer = replay_lib.ReplayBuffer(capacity=400, tau=float("inf"), seed=0)
        testdata.add_to(buffer, testdata.load("Pong"))
        batches = world_model_updates.held_out_batches(buffer, config, 12)
        measured = world_model_updates.measure(wm, batches, mean_reward=0.25)
        errors, baseline = [], []
        for batch in batches:
            _, _, _, latents = wm.losses(batch, tf.constant([0, 0], tf.int64), training=False)
            out = wm.dynamics(latents.z, batch.actions, latents.rewards, batch.dones)
            target = np.tanh(batch.rewards[:, 1:-1])
            errors.append(np.mean(np.square(out.reward.numpy()[:, 1:-1] - target)))
            baseline.append(np.mean(np.square(target - 0.25)))
        self.assertAlmostEqual(measured["reward_mse"], float(np.mean(errors)), places=5)
        self.assertAlmostEqual(measured["mean_baseline_mse"], float(np.mean(baseline)), places=6)


if __name__ == "__main__":
    absltest.main()

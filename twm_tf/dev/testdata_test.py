"""Tests for the recorded Atari sequences and their loader."""

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.envs import atari


class TestdataTest(testing.TestCase):
    @parameterized.parameters(*testdata.GAMES)
    def test_format(self, game):
        recording = testdata.load(game)
        num_steps = len(recording.frames)
        self.assertGreaterEqual(num_steps, 100)
        expected = {
            "frames": ((num_steps, 64, 64), np.uint8),
            "actions": ((num_steps,), np.int32),
            "rewards": ((num_steps,), np.float32),
            "terminated": ((num_steps,), np.bool_),
            "truncated": ((num_steps,), np.bool_),
            "is_first": ((num_steps,), np.bool_),
        }
        for name, (shape, dtype) in expected.items():
            value = getattr(recording, name)
            self.assertEqual((value.shape, value.dtype), (shape, dtype), name)
        self.assertTrue(recording.is_first[0])
        # Environments reset themselves: an observation is first exactly after an episode end.
        done = recording.terminated | recording.truncated
        self.assertAllEqual(recording.is_first[1:], done[:-1])
        self.assertTrue(done.any())
        self.assertTrue(recording.rewards.any())

    @parameterized.parameters(*testdata.GAMES)
    def test_stacks_pad_and_shift(self, game):
        recording = testdata.load(game)
        stacks = testdata.stacks(recording)
        self.assertEqual(stacks.shape, (len(recording.frames), 4, 64, 64))
        self.assertAllEqual(stacks[:, -1], recording.frames)
        for i in range(len(stacks)):
            if recording.is_first[i]:
                self.assertAllEqual(stacks[i], np.repeat(recording.frames[i][None], 4, axis=0))
            else:
                self.assertAllEqual(stacks[i, :-1], stacks[i - 1, 1:])

    @parameterized.parameters(*testdata.GAMES)
    def test_replay_in_env_reproduces_recording(self, game):
        recording = testdata.load(game)
        stacks = testdata.stacks(recording)
        env = atari.make(game, training=True, **testdata.RECORD_SETTINGS[game])
        obs = env.reset()
        for i, action in enumerate(recording.actions):
            self.assertTrue(np.array_equal(obs, stacks[i]), f"observation {i} differs")
            step = env.step(int(action))
            self.assertEqual(
                (step.reward, step.terminated, step.truncated),
                (recording.rewards[i], recording.terminated[i], recording.truncated[i]),
                f"step {i}",
            )
            obs = step.obs

    def test_breakout_has_life_losses_and_game_over(self):
        recording = testdata.load("Breakout")
        # A game has at most 5 terminals (4 life losses, then its game over): more include a reset.
        self.assertGreater(recording.terminated.sum(), 5)
        self.assertGreater(recording.rewards.max(), 0)

    def test_pong_has_lost_points_and_truncation(self):
        recording = testdata.load("Pong")
        self.assertLess(recording.rewards.min(), 0)
        self.assertTrue(recording.truncated.any())

    def test_unknown_game(self):
        with self.assertRaisesRegex(ValueError, r"no testdata for game 'Seaquest'.*Pong.*Breakout"):
            testdata.load("Seaquest")


if __name__ == "__main__":
    absltest.main()

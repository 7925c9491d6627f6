"""The pixel reward probe on synthetic replays whose reward is drawn in a known frame."""

import json
import os

from absl import app
from absl.testing import absltest
from absl.testing import flagsaver
import numpy as np

from tools.tuning import reward_from_pixels
from twm_tf.replay import buffer as replay_lib

_STEPS, _EPISODE, _SIZE = 2_000, 100, 32


def _replay(path: str, shift: int, shuffle: bool = False) -> np.ndarray:
    """Saves a replay where r_t = +-1 draws a square in frame t + `shift`; returns its rewards.

    Each step pays +1 or -1 with probability 0.1 each; +1 is a bright square top left, -1 top
    right, on faint noise. `shuffle` permutes the rewards afterwards, so nothing predicts them.
    """
    rng = np.random.default_rng(0)
    rewards = rng.choice([-1.0, 0.0, 1.0], _STEPS, p=[0.1, 0.8, 0.1]).astype(np.float32)
    frames = rng.integers(0, 20, (_STEPS, _SIZE, _SIZE), np.uint8)
    for t in np.flatnonzero(rewards)[np.flatnonzero(rewards) + shift < _STEPS]:
        column = 0 if rewards[t] > 0 else _SIZE - 8
        frames[t + shift, :8, column : column + 8] = 255
    if shuffle:
        rewards = rng.permutation(rewards)
    is_first = np.arange(_STEPS) % _EPISODE == 0
    last = np.roll(is_first, -1)
    buffer = replay_lib.ReplayBuffer(capacity=_STEPS, frame_size=_SIZE, tau=float("inf"), seed=0)
    buffer.add_batch(
        obs_or_frames=frames,
        actions=rng.integers(0, 4, _STEPS).astype(np.int32),
        rewards=rewards,
        terminated=last,
        truncated=np.zeros(_STEPS, bool),
        is_first=is_first,
    )
    buffer.save(path)
    return rewards


class RewardFromPixelsTest(absltest.TestCase):
    def _gain(self, shift: int, next_frame: bool, shuffle: bool = False) -> dict:
        directory = self.create_tempdir().full_path
        replay, out = os.path.join(directory, "replay.bin"), os.path.join(directory, "r.json")
        rewards = _replay(replay, shift, shuffle)
        with flagsaver.flagsaver(
            replay=replay,
            out=out,
            held_out_last=500,
            next_frame=next_frame,
            num_actions=4,
            updates=300,
            batch=64,
            lr=1e-3,
            measure_every=150,
        ):
            reward_from_pixels.main([])
        with open(out) as f:
            result = json.load(f)
        # Steps whose next step starts an episode have no next frame and are left out.
        self.assertEqual(result["train_steps"] + result["held_out_steps"], _STEPS - _STEPS // 100)
        self.assertEqual(result["held_out_steps"], 500 - 500 // 100)
        self.assertEqual([entry["updates"] for entry in result["log"]], [0, 150, 300])
        cut = _STEPS - 500
        train = [t for t in range(cut) if (t + 1) % _EPISODE]
        self.assertAlmostEqual(result["mean_reward"], np.tanh(rewards[train]).mean(), places=6)
        return result["log"][-1]["reward_gain"]

    def test_learns_a_reward_drawn_in_the_current_frame(self):
        self.assertGreater(self._gain(shift=0, next_frame=False), 0.5)

    def test_the_next_frame_control_sees_a_reward_drawn_after_the_step(self):
        self.assertGreater(self._gain(shift=1, next_frame=True), 0.5)
        self.assertLess(self._gain(shift=1, next_frame=False), 0.1)

    def test_nothing_is_learned_from_unrelated_rewards(self):
        self.assertLess(self._gain(shift=0, next_frame=True, shuffle=True), 0.1)

    def test_too_few_actions_is_a_usage_error(self):
        directory = self.create_tempdir().full_path
        replay = os.path.join(directory, "replay.bin")
        _replay(replay, shift=0)
        out = os.path.join(directory, "r.json")
        with flagsaver.flagsaver(replay=replay, out=out, held_out_last=500, num_actions=2):
            with self.assertRaisesRegex(app.UsageError, "--num_actions must exceed .* up to 3"):
                reward_from_pixels.main([])


if __name__ == "__main__":
    absltest.main()

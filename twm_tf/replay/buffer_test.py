"""Tests for the replay buffer: storage, balanced sampling, frame stacks and save/load."""

import math
import os
import shutil

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testdata
from twm_tf.replay import buffer as replay
from twm_tf.replay import sampling

_SIZE = 8  # Small synthetic frames keep the statistical tests fast.


def _chi2_critical(df: int) -> float:
    """Upper 0.1% quantile of chi-square(df) (Wilson-Hilferty; within 1% for df >= 3)."""
    z = 3.090  # Standard normal 99.9% quantile.
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(np.sum((counts - expected) ** 2 / expected))


def _synthetic(num: int, seed: int = 0) -> testdata.Recording:
    """Episodes of 5..40 steps ending by termination or truncation; frame i encodes i."""
    rng = np.random.default_rng(seed)
    is_first = np.zeros(num, bool)
    position = 0
    while position < num:
        is_first[position] = True
        position += int(rng.integers(5, 41))
    last = np.append(is_first[1:], False)
    terminated = last & (rng.random(num) < 0.7)
    frames = np.zeros((num, _SIZE, _SIZE), np.uint8)
    frames[:, 0, 0] = np.arange(num) % 256
    frames[:, 0, 1] = np.arange(num) // 256
    return testdata.Recording(
        frames=frames,
        actions=rng.integers(0, 6, num).astype(np.int32),
        rewards=rng.normal(size=num).astype(np.float32),
        terminated=terminated,
        truncated=last & ~terminated,
        is_first=is_first,
    )


def _slice(recording: testdata.Recording, start: int, end: int) -> testdata.Recording:
    return testdata.Recording(*(field[start:end] for field in recording))


def _buffer(recording: testdata.Recording, **kwargs) -> replay.ReplayBuffer:
    kwargs = {"capacity": len(recording.frames), "tau": 20.0, "seed": 0} | kwargs
    buffer = replay.ReplayBuffer(frame_size=recording.frames.shape[-1], **kwargs)
    testdata.add_to(buffer, recording)
    return buffer


def _check_batch(batch: replay.Batch, recording: testdata.Recording, stacks: np.ndarray):
    """Asserts that `batch` holds the recorded steps at its indices, padded before index 0."""
    index = np.maximum(batch.indices, 0)
    pad = batch.indices < 0
    np.testing.assert_array_equal(batch.frames, stacks[index])
    np.testing.assert_array_equal(batch.actions, np.where(pad, 0, recording.actions[index]))
    np.testing.assert_array_equal(batch.rewards, np.where(pad, 0, recording.rewards[index]))
    terminated = recording.terminated[index] & ~pad
    np.testing.assert_array_equal(batch.terminated, terminated)
    np.testing.assert_array_equal(batch.dones, terminated | (recording.truncated[index] & ~pad))
    np.testing.assert_array_equal(batch.is_first, recording.is_first[index])
    np.testing.assert_array_equal(batch.indices[:, 1:] - batch.indices[:, :-1], 1)


def _assert_batches_equal(test, first: replay.Batch, second: replay.Batch):
    for name, a, b in zip(replay.Batch._fields, first, second):
        test.assertEqual(a.dtype, b.dtype, name)
        np.testing.assert_array_equal(a, b, err_msg=name)


class SamplingFunctionsTest(parameterized.TestCase):
    def test_start_probabilities_by_hand(self):
        np.testing.assert_allclose(
            sampling.start_probabilities(np.array([0, 1, 2]), tau=1.0),
            np.array([1, math.exp(-1), math.exp(-2)]) / (1 + math.exp(-1) + math.exp(-2)),
        )
        np.testing.assert_allclose(
            sampling.start_probabilities(np.array([0, 7, 100]), tau=math.inf), [1 / 3] * 3
        )
        # Huge counts must not overflow: the max is subtracted before exp().
        np.testing.assert_allclose(
            sampling.start_probabilities(np.array([10**6, 10**6 + 20]), tau=20.0),
            [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))],
        )

    def test_draws_are_sequential_sampling_without_replacement(self):
        # Counts are held fixed: the first draw must follow p = softmax(-v/tau) and the second
        # p_j * sum_{i != j} p_i / (1 - p_i), as for draws one after another without replacement.
        visits = np.array([0, 0, 3, 5, 10, 20, 40, 80])
        probs = sampling.start_probabilities(visits, tau=20.0)
        second = probs * (np.sum(probs / (1 - probs)) - probs / (1 - probs))
        rng = np.random.default_rng(1)
        draws = np.array(
            [
                sampling.sample_without_replacement(-visits / 20.0, num_samples=3, rng=rng)
                for _ in range(20_000)
            ]
        )
        self.assertTrue(all(len(set(row)) == 3 for row in draws))
        for position, expected in ((0, probs), (1, second)):
            counts = np.bincount(draws[:, position], minlength=len(visits))
            self.assertLess(_chi2(counts, expected), _chi2_critical(len(visits) - 1))

    def test_draw_all(self):
        rng = np.random.default_rng(0)
        drawn = sampling.sample_without_replacement(np.zeros(5), num_samples=5, rng=rng)
        self.assertCountEqual(drawn, range(5))
        with self.assertRaisesRegex(ValueError, "6 distinct samples from 5"):
            sampling.sample_without_replacement(np.zeros(5), num_samples=6, rng=rng)


class ReplayBufferTest(parameterized.TestCase):
    def test_counts_follow_the_drawn_starts(self):
        buffer = _buffer(_synthetic(100))
        np.testing.assert_allclose(buffer.start_probabilities(10), np.full(91, 1 / 91))
        total = np.zeros(100, np.int64)
        for _ in range(20):
            batch = buffer.sample(30, 10)
            total[batch.indices[:, 1]] += 1
            np.testing.assert_array_equal(buffer.visit_counts, total)
        np.testing.assert_allclose(
            buffer.start_probabilities(10), sampling.start_probabilities(total[:91], tau=20.0)
        )

    def test_uniform_when_tau_is_inf(self):
        buffer = _buffer(_synthetic(40), tau=math.inf)
        num_starts = 40 - 5 + 1
        counts = np.zeros(num_starts, np.int64)
        for _ in range(3_000):
            starts = buffer.sample(4, 5).indices[:, 1]
            counts[starts] += 1
        self.assertLess(
            _chi2(counts, np.full(num_starts, 1 / num_starts)), _chi2_critical(num_starts - 1)
        )

    def test_uniform_sampling_keeps_counts(self):
        buffer = _buffer(_synthetic(60))
        batch = buffer.sample_uniform(20, 8)
        self.assertLen(set(batch.indices[:, 1]), 20)
        np.testing.assert_array_equal(buffer.visit_counts, np.zeros(60))

    @parameterized.parameters(20.0, math.inf)
    def test_recent_data_is_sampled_more(self, tau):
        recording = _synthetic(2_000)
        buffer = _buffer(_slice(recording, 0, 1_000), capacity=2_000, tau=tau)
        for _ in range(200):  # ~20 draws per old start: exp(-20 / tau) = e^-1 for tau = 20.
            buffer.sample(100, 8)
        testdata.add_to(buffer, _slice(recording, 1_000, 2_000))
        starts = np.concatenate([buffer.sample(100, 8).indices[:, 1] for _ in range(20)])
        new_share = np.mean(starts >= 1_000)
        if math.isinf(tau):
            self.assertBetween(new_share, 0.45, 0.55)
        else:
            self.assertGreater(new_share, 0.65)

    def test_no_duplicate_starts(self):
        buffer = _buffer(_synthetic(50))
        for batch_size in (1, 7, 43):
            starts = buffer.sample(batch_size, 8).indices[:, 1]
            self.assertLen(set(starts), batch_size)
        # Every possible start exactly once.
        self.assertCountEqual(buffer.sample(43, 8).indices[:, 1], range(43))

    @parameterized.parameters(("sample",), ("sample_uniform",))
    def test_fixed_shapes(self, method):
        buffer = _buffer(_synthetic(30))
        batch = getattr(buffer, method)(5, 16)
        self.assertEqual(batch.frames.shape, (5, 17, 4, _SIZE, _SIZE))
        self.assertEqual(batch.frames.dtype, np.uint8)
        for name, dtype in (
            ("actions", np.int32),
            ("rewards", np.float32),
            ("terminated", bool),
            ("dones", bool),
            ("is_first", bool),
            ("indices", np.int64),
        ):
            self.assertEqual(getattr(batch, name).shape, (5, 17), name)
            self.assertEqual(getattr(batch, name).dtype, dtype, name)

    def test_windows_match_synthetic_stream(self):
        recording = _synthetic(300)
        stacks = testdata.stacks(recording)
        buffer = _buffer(recording)
        for _ in range(20):
            _check_batch(buffer.sample(16, 12), recording, stacks)
            _check_batch(buffer.sample_uniform(16, 12), recording, stacks)

    def test_cut_episode_is_marked_truncated(self):
        recording = _synthetic(30)
        buffer = _buffer(recording, capacity=31)
        self.assertFalse(recording.terminated[-1] or recording.truncated[-1])
        buffer.add(
            obs_or_frame=recording.frames[0],
            action=0,
            reward=0.0,
            terminated=False,
            truncated=False,
            is_first=True,
        )
        batch = buffer.sample(1, 31)
        self.assertTrue(batch.dones[0, -2])
        self.assertFalse(batch.terminated[0, -2])


class TestdataTest(parameterized.TestCase):
    """Frame stacks and episode boundaries on the recorded streams (life losses, a time limit)."""

    def _recording(self, game: str) -> tuple[testdata.Recording, np.ndarray]:
        recording = testdata.load(game)
        return recording, testdata.stacks(recording)

    @parameterized.parameters(*testdata.GAMES)
    def test_observations_equal_recorded_stacks(self, game):
        recording, stacks = self._recording(game)
        buffer = _buffer(recording)
        np.testing.assert_array_equal(buffer.observations(np.arange(len(stacks))), stacks)
        known = {stack.tobytes() for stack in stacks}
        for stack in buffer.sample_observations(64):
            self.assertIn(stack.tobytes(), known)

    @parameterized.parameters(*testdata.GAMES)
    def test_adding_stacks_equals_adding_frames(self, game):
        # The environment's stacks pass the consistency check and store the same frames.
        recording, stacks = self._recording(game)
        by_frames = _buffer(recording)
        by_stacks = replay.ReplayBuffer(capacity=len(stacks), tau=20.0, seed=0)
        for i in range(len(stacks)):
            by_stacks.add(
                obs_or_frame=stacks[i],
                action=int(recording.actions[i]),
                reward=float(recording.rewards[i]),
                terminated=bool(recording.terminated[i]),
                truncated=bool(recording.truncated[i]),
                is_first=bool(recording.is_first[i]),
            )
        _assert_batches_equal(self, by_frames.sample(50, 16), by_stacks.sample(50, 16))

    @parameterized.parameters(*testdata.GAMES)
    def test_windows_cross_episode_ends(self, game):
        recording, stacks = self._recording(game)
        buffer = _buffer(recording)
        crossed = 0
        for _ in range(10):
            batch = buffer.sample(32, 16)
            _check_batch(batch, recording, stacks)
            crossed += np.sum(batch.dones[:, :-1] & batch.is_first[:, 1:])
        self.assertGreater(crossed, 0, "no window crossed an episode end; check the recording")

    @parameterized.parameters(*testdata.GAMES)
    def test_context_step_before_index_zero(self, game):
        # 5 starts for 5 sequences: start 0 is drawn and its context step pads with index 0.
        recording, stacks = self._recording(game)
        seq_len = 12
        batch = _buffer(_slice(recording, 0, seq_len + 4)).sample(5, seq_len)
        row = int(np.flatnonzero(batch.indices[:, 1] == 0)[0])
        self.assertEqual(batch.indices[row, 0], -1)
        np.testing.assert_array_equal(batch.frames[row, 0], stacks[0])
        np.testing.assert_array_equal(batch.frames[row, 1], stacks[0])
        self.assertEqual(batch.actions[row, 0], 0)
        self.assertEqual(batch.rewards[row, 0], 0.0)
        self.assertFalse(batch.dones[row, 0] or batch.terminated[row, 0])
        self.assertTrue(batch.is_first[row, 0] and batch.is_first[row, 1])
        _check_batch(batch, recording, stacks)


class SaveLoadTest(parameterized.TestCase):
    def _draw(self, buffer: replay.ReplayBuffer, step: int):
        # Interleave every kind of draw so each advances the saved generator state.
        if step % 3 == 0:
            return buffer.sample_uniform(8, 6)
        if step % 5 == 0:
            return buffer.sample_observations(5)
        return buffer.sample(8, 6)

    @parameterized.parameters(("restore",), ("load",))
    def test_continues_like_uninterrupted(self, how):
        buffer = _buffer(_synthetic(200), capacity=300, tau=5.0)
        for _ in range(10):
            buffer.sample(16, 6)
        path = os.path.join(self.create_tempdir().full_path, "replay.npz")
        buffer.save(path)
        if how == "restore":
            restored = replay.ReplayBuffer.restore(path)
        else:
            restored = replay.ReplayBuffer(capacity=300, frame_size=_SIZE, tau=5.0, seed=99)
            testdata.add_to(restored, _synthetic(20, seed=1))  # Replaced by the load.
            restored.load(path)
        self.assertLen(restored, 200)
        self.assertEqual((restored.capacity, restored.tau), (300, 5.0))
        np.testing.assert_array_equal(restored.visit_counts, buffer.visit_counts)
        for step in range(100):
            expected, actual = self._draw(buffer, step), self._draw(restored, step)
            if isinstance(expected, replay.Batch):
                _assert_batches_equal(self, expected, actual)
            else:
                np.testing.assert_array_equal(expected, actual)
        np.testing.assert_array_equal(restored.visit_counts, buffer.visit_counts)

    def test_restore_with_seed_draws_its_own_windows(self):
        buffer = _buffer(_synthetic(200), capacity=300)
        path = os.path.join(self.create_tempdir().full_path, "replay.npz")
        buffer.save(path)
        continued = replay.ReplayBuffer.restore(path).sample_uniform(8, 6)
        first, second = (replay.ReplayBuffer.restore(path, seed=7) for _ in range(2))
        _assert_batches_equal(self, first.sample_uniform(8, 6), second.sample_uniform(8, 6))
        other = replay.ReplayBuffer.restore(path, seed=8).sample_uniform(8, 6)
        reseeded = replay.ReplayBuffer.restore(path, seed=7).sample_uniform(8, 6)
        self.assertFalse(np.array_equal(reseeded.indices, continued.indices))
        self.assertFalse(np.array_equal(reseeded.indices, other.indices))

    def test_crash_and_corruption(self):
        directory = self.create_tempdir().full_path
        path = os.path.join(directory, "replay.npz")
        buffer = _buffer(_synthetic(100), capacity=200)
        buffer.save(path)
        good = buffer.visit_counts
        buffer.sample(10, 5)
        # A crash mid-save leaves a partial temporary file; the previous save stays usable.
        with open(path + ".tmp", "wb") as f:
            f.write(b"PK\x03\x04 partial")
        np.testing.assert_array_equal(replay.ReplayBuffer.restore(path).visit_counts, good)
        buffer.save(path)  # A later save replaces the leftover.
        self.assertFalse(os.path.exists(path + ".tmp"))
        self.assertEqual(replay.ReplayBuffer.restore(path).visit_counts.sum(), 10)

        with open(path, "rb") as f:
            data = f.read()
        truncated = os.path.join(directory, "truncated.npz")
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        with self.assertRaisesRegex(ValueError, "truncated.npz"):
            replay.ReplayBuffer.restore(truncated)
        with self.assertRaisesRegex(ValueError, "truncated.npz"):
            buffer.load(truncated)
        self.assertLen(buffer, 100)  # A failed load changes nothing.

        for offset in (20, len(data) // 3, len(data) // 2, len(data) - 40, len(data) - 1):
            corrupted = os.path.join(directory, f"corrupted{offset}.npz")
            flipped = bytearray(data)
            flipped[offset] ^= 0xFF
            with open(corrupted, "wb") as f:
                f.write(flipped)
            with self.assertRaisesRegex(ValueError, f"corrupted{offset}.npz"):
                replay.ReplayBuffer.restore(corrupted)
        shutil.copy(path, os.path.join(directory, "copy.npz"))
        self.assertLen(replay.ReplayBuffer.restore(os.path.join(directory, "copy.npz")), 100)

    def test_empty_round_trip_and_foreign_file(self):
        directory = self.create_tempdir().full_path
        path = os.path.join(directory, "empty.replay")
        replay.ReplayBuffer(capacity=10, tau=math.inf, seed=3).save(path)
        restored = replay.ReplayBuffer.restore(path)
        self.assertEqual((len(restored), restored.capacity, restored.tau), (0, 10, math.inf))
        foreign = os.path.join(directory, "foreign.npz")
        np.savez(foreign, frames=np.zeros(3))
        with self.assertRaisesRegex(ValueError, "foreign.npz is not a replay file"):
            replay.ReplayBuffer.restore(foreign)

    def test_incompatible_buffer(self):
        path = os.path.join(self.create_tempdir().full_path, "replay.npz")
        _buffer(_synthetic(100)).save(path)
        with self.assertRaisesRegex(ValueError, "more than capacity 50"):
            replay.ReplayBuffer(capacity=50, frame_size=_SIZE, tau=1.0, seed=0).load(path)
        with self.assertRaisesRegex(ValueError, "stack=4; this buffer has frame_size=8, stack=3"):
            replay.ReplayBuffer(capacity=100, frame_size=_SIZE, stack=3, tau=1.0, seed=0).load(path)


class BadInputTest(parameterized.TestCase):
    def setUp(self):
        super().setUp()
        self.buffer = replay.ReplayBuffer(capacity=3, frame_size=_SIZE, tau=20.0, seed=0)
        self.step = {
            "obs_or_frame": np.zeros((_SIZE, _SIZE), np.uint8),
            "action": 1,
            "reward": 0.5,
            "terminated": False,
            "truncated": False,
            "is_first": True,
        }

    @parameterized.named_parameters(
        ("frame_shape", {"obs_or_frame": np.zeros((_SIZE, _SIZE + 1), np.uint8)}, "shape"),
        ("stack_size", {"obs_or_frame": np.zeros((3, _SIZE, _SIZE), np.uint8)}, "shape"),
        ("frame_dtype", {"obs_or_frame": np.zeros((_SIZE, _SIZE), np.float32)}, "uint8"),
        ("negative_action", {"action": -1}, "non-negative"),
        ("float_action", {"action": 1.0}, "integers"),
        ("vector_action", {"action": [1]}, "scalar"),
        ("nan_reward", {"reward": float("nan")}, "finite"),
        ("int_flag", {"terminated": 1}, "bool"),
        ("no_first", {"is_first": False}, "is_first=True"),
    )
    def test_rejects_step(self, change, message):
        with self.assertRaisesRegex(ValueError, message):
            self.buffer.add(**self.step | change)
        self.assertEmpty(self.buffer)

    def test_rejects_stack_that_differs_from_history(self):
        self.buffer.add(**self.step)
        obs = np.zeros((4, _SIZE, _SIZE), np.uint8)
        obs[0] = 7  # The stored history holds zeros.
        with self.assertRaisesRegex(ValueError, "observation 1 differs"):
            self.buffer.add(**self.step | {"obs_or_frame": obs, "is_first": False})
        self.assertLen(self.buffer, 1)

    def test_full(self):
        for _ in range(3):
            self.buffer.add(**self.step)
        with self.assertRaisesRegex(ValueError, "full: 3 of 3"):
            self.buffer.add(**self.step)

    def test_not_enough_data(self):
        self.buffer.add(**self.step)
        self.buffer.add(**self.step)
        with self.assertRaisesRegex(ValueError, "at least 5 stored steps, the buffer holds 2"):
            self.buffer.sample(1, 5)
        with self.assertRaisesRegex(ValueError, "at least 3 stored steps"):
            self.buffer.sample_uniform(2, 2)
        with self.assertRaisesRegex(ValueError, "seq_len must be a positive int"):
            self.buffer.sample(1, 0)
        with self.assertRaisesRegex(ValueError, "empty"):
            replay.ReplayBuffer(capacity=3, tau=1.0, seed=0).sample_observations(1)

    @parameterized.parameters(0.0, -1.0, float("nan"))
    def test_bad_tau(self, tau):
        with self.assertRaisesRegex(ValueError, "tau must be > 0"):
            replay.ReplayBuffer(capacity=3, tau=tau, seed=0)


if __name__ == "__main__":
    absltest.main()

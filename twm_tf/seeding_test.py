"""Tests of the per-purpose random streams."""

import itertools

import numpy as np
from absl.testing import absltest

from twm_tf import seeding
from twm_tf.dev import testing


class SeedingTest(testing.TestCase):
    def test_purposes_get_different_streams_for_one_seed(self):
        draws = {p: seeding.numpy_rng(0, p).integers(0, 2**31, 8) for p in seeding.PURPOSES}
        for a, b in itertools.combinations(seeding.PURPOSES, 2):
            self.assertFalse(np.array_equal(draws[a], draws[b]), f"{a} and {b} share a stream")
        ints = [seeding.derive(0, p) for p in seeding.PURPOSES]
        self.assertLen(set(ints), len(ints))

    def test_prefill_actions_are_not_the_replay_indices(self):
        # The bug this module fixes: with one shared seed, the first prefill actions (6 actions)
        # were the first replay start indices (over 5,000 entries) scaled down.
        seed = 0
        actions = seeding.numpy_rng(seed, "prefill").integers(6, size=64)
        replay = np.random.default_rng(seeding.derive(seed, "replay")).integers(5_000, size=64)
        self.assertFalse(np.array_equal(actions, replay * 6 // 5_000))
        shared = np.random.default_rng(seed)
        self.assertTrue(  # What the old code did: one PCG64 stream per purpose, all equal.
            np.array_equal(
                shared.integers(6, size=64),
                np.random.default_rng(seed).integers(5_000, size=64) * 6 // 5_000,
            )
        )

    def test_streams_are_reproducible_and_seed_dependent(self):
        self.assertEqual(seeding.derive(7, "env"), seeding.derive(7, "env"))
        np.testing.assert_array_equal(
            seeding.numpy_rng(7, "replay").random(4), seeding.numpy_rng(7, "replay").random(4)
        )
        self.assertNotEqual(seeding.derive(7, "env"), seeding.derive(8, "env"))
        self.assertEqual(seeding.describe(7), seeding.describe(7))
        self.assertNotEqual(seeding.describe(7), seeding.describe(8))

    def test_indexed_streams_differ_per_item(self):
        games = [seeding.derive(3, "eval_env", i) for i in range(20)]
        self.assertLen(set(games), 20)
        self.assertNotEqual(seeding.derive(3, "eval_env", 0), seeding.derive(3, "eval_env"))
        self.assertNotEqual(seeding.derive(3, "eval_env", 1), seeding.derive(4, "eval_env", 0))

    def test_int_seeds_fit_int32(self):
        for seed in (0, 1, 2**40):
            for purpose in seeding.PURPOSES:
                self.assertTrue(0 <= seeding.derive(seed, purpose) < 2**31)

    def test_bad_input_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "unknown random-stream purpose 'nope'"):
            seeding.derive(0, "nope")
        with self.assertRaisesRegex(ValueError, "seed must be a non-negative int, got -1"):
            seeding.derive(-1, "env")
        with self.assertRaisesRegex(ValueError, "stream index must be a non-negative int"):
            seeding.derive(0, "eval_env", 1.5)


if __name__ == "__main__":
    absltest.main()

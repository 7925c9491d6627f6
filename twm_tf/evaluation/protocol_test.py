"""Tests of the batched evaluation games and the random-policy baseline."""

from unittest import mock

import numpy as np
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.evaluation import protocol as evaluation


def _frame_policy(frames):
    """A deterministic policy that depends on what it sees: logits from frame statistics."""
    means = frames.reshape(len(frames), -1).astype(np.float64).mean(axis=1)
    return np.stack([np.sin(means * k) * 3.0 for k in range(1, 5)], axis=1)


class EvaluationTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.config = config_lib.debug(game="Breakout", max_episode_steps=400)

    def test_games_do_not_depend_on_the_batch(self):
        # Each game has its own env and action streams: batching 1, 2 or 16 games at a time
        # gives every game the same result.
        results = []
        for batch in (1, 2, 16):
            with mock.patch.object(evaluation, "EVAL_BATCH", batch):
                results.append(evaluation.evaluate(_frame_policy, self.config, 5, seed=3))
        for result in results[1:]:
            self.assertEqual(result, results[0])
        self.assertLen(results[0].scores, 5)
        self.assertGreater(len(set(results[0].lengths)), 1)  # The games differ.

    def test_games_differ_and_seeds_matter(self):
        first = evaluation.evaluate(evaluation.random_policy(4), self.config, 4, seed=0)
        again = evaluation.evaluate(evaluation.random_policy(4), self.config, 4, seed=0)
        other = evaluation.evaluate(evaluation.random_policy(4), self.config, 4, seed=1)
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)

    def test_sample_follows_the_logits(self):
        rng = np.random.default_rng(0)
        draws = [evaluation.sample(np.log([1.0, 3.0, 1e-12]), rng) for _ in range(20_000)]
        self.assertAllClose(np.bincount(draws, minlength=3) / 20_000, [0.25, 0.75, 0.0], atol=0.01)
        self.assertEqual(evaluation.sample(np.array([-1e9, 0.0, -1e9]), rng), 1)

    def test_final_evaluation_writes_the_random_baseline(self):
        path = self.create_tempdir().full_path + "/eval.json"
        summary = evaluation.evaluate_final(_frame_policy, self.config, 3, seed=0, path=path)
        baseline = evaluation.evaluate(evaluation.random_policy(4), self.config, 3, seed=0)
        self.assertEqual(summary["random_scores"], baseline.scores)
        self.assertEqual(summary["random_mean"], baseline.mean)
        self.assertLen(summary["scores"], 3)


if __name__ == "__main__":
    absltest.main()

"""Tests of reading and plotting a run's learning curves."""

import csv
import json
import os

import numpy as np
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.evaluation import curves


def _write_run(run_dir: str, final: bool) -> None:
    config_lib.debug(env_steps=300).save(run_dir)
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="") as f:
        csv.writer(f).writerows([[50, 1, -3.0], [120, 2, 1.0], [260, 3, 5.0]])
    with open(os.path.join(run_dir, "evals.csv"), "w", newline="") as f:
        csv.writer(f).writerows([[100, 0.5, 1.0, 0.1, 10], [200, 2.0, 0.5, 0.2, 10]])
    if final:
        with open(os.path.join(run_dir, "eval.json"), "w") as f:
            json.dump({"mean": 4.0, "std": 2.0, "random_mean": -1.0}, f)


class CurvesTest(testing.TestCase):
    def test_load_appends_the_final_evaluation(self):
        run_dir = self.create_tempdir().full_path
        _write_run(run_dir, final=True)
        data = curves.load(run_dir)
        np.testing.assert_array_equal(data.episode_steps, [50, 120, 260])
        np.testing.assert_array_equal(data.episode_returns, [-3.0, 1.0, 5.0])
        np.testing.assert_array_equal(data.eval_steps, [100, 200, 300])
        np.testing.assert_array_equal(data.eval_means, [0.5, 2.0, 4.0])
        np.testing.assert_array_equal(data.eval_stds, [1.0, 0.5, 2.0])
        self.assertEqual(data.random_mean, -1.0)

    def test_unfinished_run_has_no_final_point(self):
        run_dir = self.create_tempdir().full_path
        _write_run(run_dir, final=False)
        data = curves.load(run_dir)
        np.testing.assert_array_equal(data.eval_steps, [100, 200])
        self.assertIsNone(data.random_mean)

    def test_bad_run_dirs_are_clear_errors(self):
        with self.assertRaisesRegex(ValueError, "not a run directory"):
            curves.load(self.create_tempdir().full_path)
        run_dir = self.create_tempdir().full_path
        config_lib.debug().save(run_dir)
        with self.assertRaisesRegex(ValueError, "no finished training episode"):
            curves.load(run_dir)

    def test_smooth_is_a_trailing_mean(self):
        np.testing.assert_allclose(curves.smooth(np.array([1, 3, 5, 7]), 2), [1, 2, 4, 6])
        np.testing.assert_allclose(curves.smooth(np.array([2.0]), 10), [2.0])

    def test_plot_writes_a_png(self):
        run_dir = self.create_tempdir().full_path
        _write_run(run_dir, final=True)
        path = os.path.join(run_dir, "curves.png")
        curves.plot(curves.load(run_dir), "debug", path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    absltest.main()

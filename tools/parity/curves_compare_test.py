"""curves_compare's rule: verdicts on hand-made seed values and its false-alarm rate; runs
measured on other held-out windows are refused."""

import numpy as np
from absl.testing import absltest

from tools.parity import curves_compare


class JudgeTest(absltest.TestCase):
    def test_gap_within_the_larger_range_passes(self):
        entry = curves_compare.judge(
            {"twm_tf": np.array([1.0, 2.0, 3.0]), "original": np.array([2.5, 3.0, 3.5])}
        )
        self.assertEqual(entry["verdict"], "within spread")  # gap 1.0, spread 2.0
        self.assertAlmostEqual(entry["gap_over_spread"], 0.5)

    def test_separated_seeds_fail(self):
        entry = curves_compare.judge(
            {"twm_tf": np.array([1.0, 1.1, 1.2]), "original": np.array([2.0, 2.1, 2.2])}
        )
        self.assertEqual(entry["verdict"], "outside spread")
        self.assertAlmostEqual(entry["gap_over_spread"], 5.0)

    def test_false_alarm_rate_matches_exchangeable_seeds_and_falls_with_more(self):
        # 3 + 3 seeds: the rule fails identical codes about 1 time in 20.
        self.assertAlmostEqual(curves_compare.false_alarm_rate(3, 3), 0.05, delta=0.005)
        rates = [curves_compare.false_alarm_rate(n, n) for n in (2, 3, 5)]
        self.assertEqual(rates, sorted(rates, reverse=True))
        self.assertLess(rates[-1], 0.005)
        entry = curves_compare.judge({"twm_tf": np.arange(5.0), "original": np.arange(3.0)})
        self.assertEqual(entry["false_alarm_rate"], curves_compare.false_alarm_rate(5, 3))


def _run(path: str, seed: int, starts=(7, 9)) -> dict:
    """A hand-made run: 100 world-model updates and two held-out evaluations."""
    rng = np.random.default_rng(seed)
    return {
        "path": path,
        "wm/decoder": 10.0 + rng.standard_normal(100),
        "heldout/decoder": 10.0 + rng.standard_normal(2),
        "heldout_step": np.array([0, 100]),
        "heldout_starts": np.array(starts),
    }


class CompareTest(absltest.TestCase):
    def test_runs_on_the_same_heldout_windows_are_judged(self):
        runs = {
            "twm_tf": [_run(f"tf-{s}", s) for s in range(3)],
            "original": [_run(f"orig-{s}", 10 + s) for s in range(3)],
        }
        report = curves_compare.compare(runs, window=50)
        self.assertEqual(set(report["terms"]), {"wm/decoder", "heldout/decoder"})
        self.assertLen(report["terms"]["heldout/decoder"]["twm_tf"]["seeds"], 3)

    def test_runs_on_other_heldout_windows_are_refused(self):
        runs = {
            "twm_tf": [_run("tf-0", 0), _run("tf-wm-only", 1, starts=(7, 8))],
            "original": [_run("orig-0", 2), _run("orig-1", 3)],
        }
        with self.assertRaisesRegex(ValueError, r"differ.*\['tf-wm-only'\]"):
            curves_compare.compare(runs, window=50)
        del runs["twm_tf"][1]["heldout_starts"]
        with self.assertRaisesRegex(ValueError, r"without heldout_starts.*\['tf-wm-only'\]"):
            curves_compare.compare(runs, window=50)


if __name__ == "__main__":
    absltest.main()

"""Tests of the Atari 100k report: aggregates, intervals, the published reproduction, outputs."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
from absl.testing import absltest
from scipy import stats

from twm_tf import config as config_lib
from twm_tf import games
from twm_tf.dev import testing
from twm_tf.evaluation import report
from twm_tf.evaluation import report_output

_FAST = dict(resamples=1_000, seed=0)


def _write_run(run_dir: str, game: str, final: float | None, **overrides) -> None:
    """A fake launch.train run: interim evaluations at 100 and 200 env steps, final at 300."""
    os.makedirs(run_dir)
    config_lib.debug(game=game, env_steps=300, **overrides).save(run_dir)
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="") as f:
        csv.writer(f).writerows([[150, 1, 1.0]])
    reference = games.reference_scores()[game]
    with open(os.path.join(run_dir, "evals.csv"), "w", newline="") as f:
        csv.writer(f).writerows(
            [[100, reference["random"], 1.0, 0.0, 10], [200, reference["human"], 1.0, 1.0, 10]]
        )
    if final is not None:
        with open(os.path.join(run_dir, "eval.json"), "w") as f:
            json.dump({"game": game, "mean": final, "std": 1.0}, f)


class AggregateTest(testing.TestCase):
    def test_aggregates_by_hand(self):
        scores = {
            "A": np.array([0.0, 1.0]),
            "B": np.array([2.0, 4.0]),
            "C": np.array([0.5, 0.5]),
            "D": np.array([-1.0, 0.0]),
        }
        result = report.aggregate(scores, **_FAST)
        # Game means 0.5, 3, 0.5, -0.5.
        self.assertAlmostEqual(result["mean"].value, 0.875)
        self.assertAlmostEqual(result["median"].value, 0.5)
        # Sorted runs -1 0 0 .5 | .5 1 2 4: the middle four [0, .5, .5, 1].
        self.assertAlmostEqual(result["iqm"].value, 0.5)
        # max(1 - x, 0): 1 0 | 0 0 | .5 .5 | 2 1.
        self.assertAlmostEqual(result["optimality_gap"].value, 5 / 8)

    def test_probability_of_improvement_by_hand(self):
        x = {"A": np.array([1.0, 2.0]), "B": np.array([0.0, 0.0])}
        y = {"A": np.array([0.0, 2.0]), "B": np.array([0.0, 1.0]), "C": np.array([1.0, 1.0])}
        estimate, per_game = report.probability_of_improvement(x, y, **_FAST)
        self.assertEqual(per_game, {"A": 2.5 / 4, "B": 1 / 4})  # C: not in x.
        self.assertAlmostEqual(estimate.value, (2.5 / 4 + 1 / 4) / 2)

    def test_probability_of_improvement_is_mann_whitney_u(self):
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 5).astype(float)
        _, per_game = report.probability_of_improvement({"A": x}, {"A": y}, **_FAST)
        u = stats.mannwhitneyu(x, y, alternative="greater").statistic
        self.assertAlmostEqual(per_game["A"], u / (len(x) * len(y)))

    def test_intervals_contain_the_estimate_and_narrow_with_more_runs(self):
        rng = np.random.default_rng(0)
        centers = np.array([0.1, 0.4, 0.8, 1.5, 3.0])

        def grid(runs):
            return {f"G{i}": c + 0.3 * rng.standard_normal(runs) for i, c in enumerate(centers)}

        few, many = report.aggregate(grid(3), **_FAST), report.aggregate(grid(30), **_FAST)
        for name in report.AGGREGATES:
            for result in (few, many):
                low, high = result[name].ci
                self.assertLessEqual(low, result[name].value)
                self.assertLessEqual(result[name].value, high)
        for name in ("mean", "iqm", "optimality_gap"):
            self.assertLess(np.diff(many[name].ci)[0], np.diff(few[name].ci)[0], name)

    def test_single_runs_are_held_fixed(self):
        alone = report.aggregate({"A": np.array([0.3]), "B": np.array([0.9])}, **_FAST)
        self.assertIsNone(alone["mean"].ci)
        self.assertAlmostEqual(alone["mean"].value, 0.6)
        mixed = report.aggregate({"A": np.array([0.3]), "B": np.array([0.5, 1.3])}, **_FAST)
        # Only B's runs vary: the mean of game means ranges over (0.3 + [0.5, 1.3]) / 2.
        self.assertGreaterEqual(mixed["mean"].ci[0], 0.4 - 1e-9)
        self.assertLessEqual(mixed["mean"].ci[1], 0.8 + 1e-9)


class ImportTest(absltest.TestCase):
    def test_the_report_needs_no_tensorflow_ale_or_opencv(self):
        # A report of many runs is made on any machine: the scores table is all it needs.
        script = (
            "import sys\n"
            "from twm_tf.evaluation import report\n"
            "print(sorted(m for m in ('tensorflow', 'ale_py', 'cv2') if m in sys.modules))\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        self.assertEqual(result.stdout.strip(), "[]")


class PublishedTest(testing.TestCase):
    def test_reproduces_published_twm_aggregates(self):
        result = report.build(published="TWM", compare="IRIS", **_FAST)
        aggregates = result["aggregates"]
        self.assertEqual(round(aggregates["mean"]["value"], 3), 0.956)
        self.assertEqual(round(aggregates["median"]["value"], 3), 0.505)
        self.assertEqual(round(aggregates["iqm"]["value"], 3), 0.459)
        self.assertEqual(result["missing_games"], [])
        self.assertEqual(result["missing_runs"], 0)
        self.assertEqual(sum(result["runs_per_game"].values()), 130)
        self.assertEqual(result["published_aggregates"]["TWM"], aggregates)
        # The per-run file agrees with the per-game means of twm_tf/atari100k.csv.
        for game, row in games.reference_scores().items():
            self.assertAlmostEqual(result["per_game"][game]["mean"], row["twm"], delta=0.05)

    def test_unknown_agent_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "unknown published agent 'Nope'"):
            report.build(published="Nope", **_FAST)


class RunsTest(testing.TestCase):
    def test_partial_grid_writes_the_report_and_lists_what_is_missing(self):
        root = self.create_tempdir().full_path
        _write_run(os.path.join(root, "grid", "pong-0"), "Pong", final=5.0)
        _write_run(os.path.join(root, "grid", "boxing-0"), "Boxing", final=20.0)
        _write_run(os.path.join(root, "grid", "alien-0"), "Alien", final=None)
        _write_run(os.path.join(root, "tau", "pong-0"), "Pong", final=-10.0, replay_tau=np.inf)
        runs = report.load_runs(os.path.join(root, "grid", "*"))
        variant = report.load_runs(os.path.join(root, "tau", "*"), "variant_runs")
        result = report.build(runs=runs, variant=variant, compare="IRIS", source="grid", **_FAST)

        self.assertEqual(result["games"], ["Boxing", "Pong"])
        self.assertLen(result["missing_games"], 24)
        self.assertIn("Alien", result["missing_games"])
        self.assertEqual(result["missing_runs"], 26 * 5 - 2)
        self.assertEqual(result["unfinished_runs"], [os.path.join(root, "grid", "alien-0")])
        self.assertIsNone(result["aggregates"]["mean"]["ci"])  # One run per game.
        self.assertAlmostEqual(
            result["aggregates"]["mean"]["value"],
            (games.human_normalized("Pong", 5.0) + games.human_normalized("Boxing", 20.0)) / 2,
        )
        # Curves: random, human, then the final score; the unfinished run has interim points.
        self.assertEqual(result["curves"]["Pong"]["steps"], [100, 200, 300])
        np.testing.assert_allclose(result["curves"]["Pong"]["mean"][:2], [0.0, 1.0])
        self.assertEqual(result["curves"]["Alien"]["steps"], [100, 200])
        self.assertEqual(result["variant"]["games"], ["Pong"])
        self.assertEqual(result["variant"]["differences"], {"replay_tau": ["20.0", "inf"]})
        self.assertEqual(result["variant"]["probability_of_improvement"]["value"], 0.0)

        out = os.path.join(root, "report")
        paths = report_output.write(result, out)
        for name in ("report.md", "report.json", "curves.png", "profile.png", "variant.png"):
            self.assertIn(os.path.join(out, name), paths)
        for name in ("curves.png", "profile.png", "variant.png"):
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, "report.json")) as f:
            self.assertEqual(json.load(f)["missing_runs"], 128)
        with open(os.path.join(out, "report.md")) as f:
            text = f.read()
        self.assertIn("2 finished runs on 2 of 26 games", text)
        self.assertIn("Missing games (24): Alien, Amidar", text)
        self.assertIn("Boxing 1/5, Pong 1/5", text)
        self.assertIn("replay_tau=inf (default 20.0)", text)

    def test_empty_glob_names_the_flag(self):
        pattern = os.path.join(self.create_tempdir().full_path, "nothing*")
        with self.assertRaisesRegex(ValueError, r"^--variant_runs=.* matches no run directory"):
            report.load_runs(pattern, "variant_runs")

    def test_runs_without_a_final_evaluation_are_an_error(self):
        root = self.create_tempdir().full_path
        _write_run(os.path.join(root, "pong-0"), "Pong", final=None)
        with self.assertRaisesRegex(ValueError, "no run of .* has a final evaluation"):
            report.build(runs=report.load_runs(os.path.join(root, "*")), **_FAST)


if __name__ == "__main__":
    absltest.main()

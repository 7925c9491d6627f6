"""launch.sweep through an embedded Ray: a 2 x 2 debug grid runs, resumes a killed run, is
skipped when run again and is reported; a trial that keeps failing is retried, then reported."""

import glob
import json
import os
import signal
import subprocess
import sys

from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import faults

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV_VAR}
    env.update(PYTHONPATH=_REPO, **extra)
    # Ray's sockets live in its temp dir; a test's TMPDIR is longer than a socket path may be.
    env["RAY_TMPDIR"] = "/tmp"
    # Ray saves its auth token under ~/.ray, and Bazel's sandbox makes HOME read-only.
    if "TEST_TMPDIR" in os.environ:
        env["HOME"] = os.environ["TEST_TMPDIR"]
    return env


def _launch(binary: str, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"launch.{binary}", *args],
        cwd=_REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _attempts(log: str) -> int:
    with open(log) as f:
        return sum(line.startswith("=== attempt started") for line in f)


class SweepTest(absltest.TestCase):
    def test_grid_resumes_skips_and_reports(self):
        root = self.create_tempdir().full_path
        grid = ("--games=Pong,Breakout", "--seeds=0,1", "--preset=debug", f"--root={root}")
        # One run of the grid was killed mid-run (after its first checkpoint) before the sweep.
        killed = os.path.join(root, "base", "breakout-1")
        result = _launch(
            "train",
            "--preset=debug",
            "--game=Breakout",
            "--seed=1",
            f"--run_dir={killed}",
            **{faults.ENV_VAR: "train_step:20"},
        )
        self.assertEqual(result.returncode, -signal.SIGKILL, result.stderr[-2000:])
        self.assertNotEmpty(glob.glob(os.path.join(killed, "checkpoints", "ckpt-*.index")))

        result = _launch("sweep", *grid, "--num_cpus=2")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        runs = ["pong-0", "pong-1", "breakout-0", "breakout-1"]
        for run in runs:
            self.assertTrue(os.path.isfile(os.path.join(root, "base", run, "eval.json")), run)
            self.assertIn(f"base/{run}: done", result.stdout)
            self.assertEqual(_attempts(os.path.join(root, "base", run + ".log")), 1, run)
        with open(killed + ".log") as f:
            self.assertIn("resumed", f.read())  # from its checkpoint, not started over
        with open(os.path.join(root, "report", "base", "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["runs_per_game"], {"Breakout": 2, "Pong": 2})
        self.assertEqual(report["unfinished_runs"], [])

        again = _launch("sweep", *grid, "--num_cpus=2")
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        for run in runs:
            self.assertIn(f"base/{run}: skipped", again.stdout)
            self.assertEqual(_attempts(os.path.join(root, "base", run + ".log")), 1, run)

    def test_failing_trial_is_retried_and_reported(self):
        root = self.create_tempdir().full_path
        # A run directory of another config: launch.train refuses it at every attempt.
        run_dir = os.path.join(root, "base", "pong-0")
        config_lib.debug(game="Pong", env_steps=200).save(run_dir)

        result = _launch(
            "sweep", "--games=Pong", "--seeds=0", "--preset=debug", f"--root={root}",
            "--max_failures=1", "--num_cpus=1",
        )  # fmt: skip
        self.assertEqual(result.returncode, 1)
        self.assertIn("1 of 1 trials failed: base/pong-0", result.stderr)
        self.assertIn("base/pong-0: failed", result.stdout)
        self.assertEqual(_attempts(run_dir + ".log"), 2)  # the first attempt and one retry


if __name__ == "__main__":
    absltest.main()

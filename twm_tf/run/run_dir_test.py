"""Tests of the run directory's checks and logs."""

import os

from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import files
from twm_tf.dev import testing
from twm_tf.run import run_dir as run_dir_lib


class CheckConfigTest(testing.TestCase):
    def test_creates_a_new_run_directory(self):
        run_dir = os.path.join(self.create_tempdir().full_path, "a", "run")
        run_dir_lib.check_config(run_dir, config_lib.debug())
        self.assertTrue(os.path.isdir(run_dir))

    def test_refuses_a_file_and_a_path_that_cannot_be_created(self):
        path = os.path.join(self.create_tempdir().full_path, "file")
        with open(path, "w") as f:
            f.write("a user's file")
        for run_dir, message in (
            (path, "--run_dir=.*file is a file, not a directory"),
            (os.path.join(path, "run"), "--run_dir=.*run cannot be created: Not a directory"),
            ("/proc/twm_run", "--run_dir=/proc/twm_run cannot be created: No such file"),
        ):
            with self.assertRaisesRegex(run_dir_lib.RunDirError, message):
                run_dir_lib.check_config(run_dir, config_lib.debug())
        with open(path) as f:
            self.assertEqual(f.read(), "a user's file")

    def test_a_damaged_config_is_named_and_left_as_it_is(self):
        run_dir = self.create_tempdir().full_path
        path = config_lib.debug().save(run_dir)
        with open(path, "w") as f:
            f.write('{"game": "Pong", "seed"')
        with self.assertRaisesRegex(files.FileError, f"config {path} is not valid JSON"):
            run_dir_lib.check_config(run_dir, config_lib.debug())
        with open(path) as f:
            self.assertEqual(f.read(), '{"game": "Pong", "seed"')


class LogsTest(testing.TestCase):
    def test_logs_read_back_and_a_torn_episode_row_is_dropped(self):
        run_dir = self.create_tempdir().full_path
        run_dir_lib.append_episode(run_dir, 50, 1, -21.0)
        run_dir_lib.log_evaluation(run_dir, 100, [1.0, 3.0], 0.5)
        with open(run_dir_lib.path(run_dir, run_dir_lib.EPISODES), "a") as f:
            f.write("90,2,-1")  # Cut by a kill.
        self.assertEqual(run_dir_lib.read_episodes(run_dir), [(50, 1, -21.0)])
        self.assertEqual(run_dir_lib.read_evals(run_dir), [(100, 2.0, 1.0, 0.5, 2)])
        run_dir_lib.truncate_episodes(run_dir, 5)
        with open(run_dir_lib.path(run_dir, run_dir_lib.EPISODES), newline="") as f:
            self.assertEqual(f.read(), "50,1,-21.0\r\n")

    def test_a_damaged_log_is_named(self):
        run_dir = self.create_tempdir().full_path
        with open(run_dir_lib.path(run_dir, run_dir_lib.EVALS), "w") as f:
            f.write("100,2.0,1.0,0.5,2\n200,oops,1.0,0.5,2\n")
        with self.assertRaisesRegex(files.FileError, r"evals.csv line 2: mean must be a finite"):
            run_dir_lib.log_evaluation(run_dir, 300, [1.0], 0.1)


if __name__ == "__main__":
    absltest.main()

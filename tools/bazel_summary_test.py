"""Tests for the CI result counter."""

import unittest

from tools import bazel_summary

_LOG = """\
INFO: Build completed, 1 test FAILED, 5 total actions
//twm_tf:config_test                                            PASSED in 3.1s
//twm_tf:replay/buffer_test                                   (cached) PASSED in 9.0s
//twm_tf:trainer_test                                             FAILED in 2 out of 2 in 40.1s
//twm_tf/models:dynamics_test                                   TIMEOUT in 300.0s
//twm_tf/models:observation_test                                FLAKY, failed in 1 out of 2
//launch:train_test                                    FAILED TO BUILD
Executed 5 out of 6 tests: 3 tests pass and 3 fail locally.
"""


class CountTest(unittest.TestCase):
    def test_counts_each_status(self):
        self.assertEqual(bazel_summary.count(_LOG.splitlines()), (3, 3))

    def test_ignores_other_lines(self):
        self.assertEqual(bazel_summary.count(["INFO: //x:y PASSED", "PASSED"]), (0, 0))


if __name__ == "__main__":
    unittest.main()

"""Tests of the run-directory lock across processes."""

import os
import signal
import subprocess
import sys
import time

from absl.testing import absltest

from twm_tf.dev import testing
from twm_tf.run import run_lock

_HOLDER = """
import sys, time
from twm_tf.run import run_lock
with run_lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


class RunLockTest(testing.TestCase):
    def _start_holder(self, run_dir: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, run_dir], stdout=subprocess.PIPE, env=env, text=True
        )
        self.assertEqual(holder.stdout.readline().strip(), "held")
        self.addCleanup(holder.kill)
        return holder

    def test_second_writer_is_refused_with_the_holders_pid(self):
        run_dir = self.create_tempdir().full_path
        holder = self._start_holder(run_dir)
        with self.assertRaisesRegex(run_lock.RunDirLocked, rf"another process \(pid {holder.pid} "):
            with run_lock.hold(run_dir):
                pass

    def test_a_killed_holder_leaves_no_stuck_lock(self):
        run_dir = self.create_tempdir().full_path
        holder = self._start_holder(run_dir)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with run_lock.hold(run_dir):  # Taken at once: the kernel dropped the dead one's lock.
            with open(os.path.join(run_dir, ".lock")) as f:
                self.assertIn(f"pid {os.getpid()} ", f.read())

    def test_released_after_the_block_and_reentrant_in_sequence(self):
        run_dir = self.create_tempdir().full_path
        for _ in range(2):
            with run_lock.hold(run_dir):
                pass
        start = time.monotonic()
        with run_lock.hold(run_dir):
            self.assertLess(time.monotonic() - start, 1.0)


if __name__ == "__main__":
    absltest.main()

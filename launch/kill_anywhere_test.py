"""SIGKILL at 11 places across a debug run, resume after each: the run ends as an uninterrupted one.

The kills, in order, with the checkpoint each resume starts from (checkpoint_every = 20 steps):
prefill step 30 (from 20); in the middle of the replay file of step 40 (20); after that replay
file, before its checkpoint (20); after the checkpoint, before the old replay file is removed
(40); pretraining update 50, in the VAE part (80); update 100, in the dynamics part (80); the
first game of the evaluation after pretraining (80); the 10th train step, at env step 120 (100);
the 3rd train step after that resume (100); the replay file of step 140 (120); the final
evaluation's game, after the last checkpoint (200).
"""

import os
import shutil
import signal
import tempfile

from absl.testing import absltest

from launch import kill_anywhere

KILLS = [
    "prefill_step:30",
    "replay_write:1",
    "checkpoint_write:1",
    "after_checkpoint:1",
    "pretrain_update:50",
    "pretrain_update:100",
    "eval_game:1",
    "train_step:10",
    "train_step:3",
    "replay_write:2",
    "eval_game:2",
]


class KillAnywhereTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.straight = os.path.join(cls.root, "straight")
        assert kill_anywhere.train(cls.straight) == 0
        cls.reference = kill_anywhere.final_state(cls.straight)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)
        super().tearDownClass()

    def test_killed_run_equals_uninterrupted_run(self):
        killed = os.path.join(self.root, "killed")
        codes = kill_anywhere.kill_and_resume(killed, [{"kill_at": k} for k in KILLS])
        # Every kill point was reached: each attempt died instead of finishing.
        self.assertEqual(codes, [-signal.SIGKILL] * len(KILLS))
        found = kill_anywhere.differences(kill_anywhere.final_state(killed), self.reference)
        self.assertEqual(found, [])

    def test_differences_are_found(self):
        # The comparison itself can fail: a changed weight or episode log is reported.
        other = os.path.join(self.root, "other")
        shutil.copytree(self.straight, other)
        state = kill_anywhere.final_state(other)
        self.assertEqual(kill_anywhere.differences(state, self.reference), [])
        key = next(k for k in state["tensors"] if "dynamics" in k and "kernel" in k)
        state["tensors"][key] = state["tensors"][key] + 1
        with open(os.path.join(other, "episodes.csv"), "a") as f:
            f.write("999,999,0\n")
        found = kill_anywhere.differences(state, self.reference)
        self.assertIn(f"checkpoint tensor {key} differs", found)
        self.assertIn("episodes.csv differs", found)


if __name__ == "__main__":
    absltest.main()

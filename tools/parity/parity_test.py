"""One update of twm-tf against the original TWM's, from the fixture in testdata/parity/tiny.

The fixture (tools/parity/README.md) holds a tiny config's initial weights, a batch of Breakout
windows with episode ends, every random draw of one update and what the original PyTorch code
computed from them: gradients before clipping, global norms, weights and Adam moments after the
step, and the imagined trajectory. This test runs twm-tf's update on the same inputs (no torch
needed) and checks every tensor within diff.TOLERANCE (relative).
"""

import os

import numpy as np
from absl.testing import absltest

from tools.parity import case as case_lib
from tools.parity import diff
from tools.parity import draws as draws_lib
from tools.parity import twm_update
from twm_tf.dev import testing

_FIXTURE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "testdata", "parity", "tiny"
)
_MODELS = ("observation", "dynamics", "critic", "actor")


class ParityTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        case = case_lib.load(_FIXTURE)
        ours = twm_update.run(case, draws_lib.load(os.path.join(_FIXTURE, case_lib.DRAWS)))
        with np.load(os.path.join(_FIXTURE, "orig.npz")) as data:
            theirs = {k: data[k] for k in data.files}
        cls.diffs = diff.differences(ours, theirs, case.weights)
        cls.ours, cls.theirs = ours, theirs

    def _check(self, prefix: str):
        keys = [k for k in self.diffs if k.startswith(prefix)]
        self.assertNotEmpty(keys, prefix)
        worst = {k: self.diffs[k]["original"] for k in keys if not diff.passes(self.diffs[k])}
        self.assertEmpty(worst, f"relative differences above {diff.TOLERANCE}")

    def test_fixture_exercises_clipping_restarts_dropout_and_episode_ends(self):
        config = case_lib.load(_FIXTURE).config
        self.assertGreater(config.dyn_dropout, 0.0)
        for model, clip in (("observation", config.wm_clip), ("critic", config.ac_clip)):
            self.assertGreater(float(self.theirs[f"{model}/grad_norm"]), clip, model)
        self.assertTrue(self.theirs["imagination/dones"].any())
        self.assertTrue(case_lib.load(_FIXTURE).batch.dones[:, 1:-1].any())

    def test_gradients_before_clipping(self):
        for model in _MODELS:
            with self.subTest(model):
                self._check(f"{model}/grad/")

    def test_gradient_norms(self):
        # The dynamics norm includes the action embedding's gradient, whose repeated rows an
        # IndexedSlices norm would not sum first (README "Findings").
        for model in _MODELS:
            with self.subTest(model):
                self._check(f"{model}/grad_norm")

    def test_adam_moments_after_the_step(self):
        for model in _MODELS:
            for moment in ("exp_avg", "exp_avg_sq"):
                with self.subTest(model=model, moment=moment):
                    self._check(f"{model}/{moment}/")

    def test_weights_after_the_step(self):
        for model in _MODELS:
            with self.subTest(model):
                self._check(f"{model}/weight/")

    def test_imagined_trajectory(self):
        self._check("imagination/")
        for key, count in diff.mismatches(self.ours, self.theirs).items():
            self.assertEqual(count, 0, key)


if __name__ == "__main__":
    absltest.main()

"""The VAE pretraining probe on the debug preset: it writes its log and the error falls."""

import json
import os

from absl.testing import absltest
from absl.testing import flagsaver

from tools.tuning import vae_pretraining


class VaePretrainingTest(absltest.TestCase):
    def test_log_and_falling_error(self):
        out = os.path.join(self.create_tempdir().full_path, "vae.json")
        with flagsaver.flagsaver(
            preset="debug",
            game="Boxing",
            updates=30,
            measure_every=15,
            prefill=200,
            held_out=60,
            out=out,
            **{"config.obs_lr": 1e-3},
        ):
            vae_pretraining.main([])
        with open(out) as f:
            result = json.load(f)
        self.assertEqual([entry["updates"] for entry in result["log"]], [0, 15, 30])
        self.assertEqual(result["log"][-1]["frames"], 30 * 16)  # debug's pretrain_obs_batch
        first, last = result["log"][0], result["log"][-1]
        self.assertLess(last["mse"], first["mse"])
        self.assertLess(last["moving_mse"], first["moving_mse"])
        self.assertGreater(result["moving_fraction"], 0.0)


if __name__ == "__main__":
    absltest.main()

"""A run written before the package reshape (commit 60070fc) resumes and restores unchanged.

testdata/pre_reshape_run is that commit's `launch.train --preset=debug --game=Pong
--config.env_steps=120 --config.checkpoint_every=120 --config.eval_episodes=1
--config.max_episode_steps=50`, last checkpoint only. Checkpoint keys are object names (models by
layer path, optimizers, counters, the loop's Python state), never module paths, so moving modules
must not change them; this test fails if a rename does.
"""

import os
import shutil

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import trainer as trainer_lib
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import restore

_RUN = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "testdata", "pre_reshape_run")


class PreReshapeCheckpointTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.run_dir = os.path.join(self.create_tempdir().full_path, "run")
        shutil.copytree(_RUN, self.run_dir)
        self.prefix = os.path.join(self.run_dir, "checkpoints", "ckpt-2")

    def test_trainer_resumes_every_saved_value(self):
        config = config_lib.load(os.path.join(self.run_dir, "config.json"))
        trainer = trainer_lib.Trainer(config, self.run_dir)
        self.assertEqual(trainer.restore(), self.prefix)
        self.assertEqual(int(trainer.counters["env_steps"]), 120)
        self.assertEqual(int(trainer.counters["episodes"]), 2)
        self.assertLen(trainer.replay, 120)
        self.assertEqual(trainer.loop.obs.shape, (4, 64, 64))
        self.assertIsInstance(trainer.loop.first, bool)
        reader = tf.train.load_checkpoint(self.prefix)
        suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
        compared = 0
        for name, model in trainer.learner.models.items():
            variables = checkpoint_lib.variables_by_path(model)
            prefix = f"models/{name}/weights/"
            for key, _ in tf.train.list_variables(self.prefix):
                if key.startswith(prefix) and key.endswith(suffix):
                    path = checkpoint_lib._unescape(key[len(prefix) : -len(suffix)])  # noqa: SLF001
                    np.testing.assert_array_equal(
                        variables[path].numpy(), reader.get_tensor(key), err_msg=key
                    )
                    compared += 1
        self.assertGreater(compared, 50)

    def test_analysis_restore_loads_it(self):
        run = restore.load_run(self.run_dir)
        self.assertEqual(run.checkpoint, self.prefix)
        self.assertEqual(run.config.game, "Pong")


if __name__ == "__main__":
    absltest.main()

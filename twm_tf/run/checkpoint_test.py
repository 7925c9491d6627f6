"""Checkpoints keyed by variable path, and resuming past damaged checkpoint or replay files."""

import errno
import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import files
from twm_tf import learner as learner_lib
from twm_tf.dev import testing
from twm_tf.replay import buffer as replay_lib
from twm_tf.run import checkpoint as checkpoint_lib


def _mlp(widths: tuple[int, ...], name: str = "tiny") -> keras.Model:
    layers = [keras.layers.Dense(w, name=f"hidden_{i}") for i, w in enumerate(widths)]
    model = keras.Sequential(layers, name=name)
    model(np.zeros([1, 4], np.float32))
    return model


def _replay(steps: int) -> replay_lib.ReplayBuffer:
    replay = replay_lib.ReplayBuffer(capacity=32, frame_size=8, stack=2, tau=1.0, seed=0)
    for i in range(steps):
        frame = np.full([8, 8], i, np.uint8)
        replay.add(
            obs_or_frame=frame,
            action=i % 3,
            reward=0.0,
            terminated=False,
            truncated=False,
            is_first=i == 0,
        )
    return replay


class ModelWeightsTest(testing.TestCase):
    def test_paths_are_stable_across_builds_in_one_process(self):
        # The second build gets other automatic layer names; the checkpoint keys must not change.
        config = config_lib.debug()
        first = learner_lib.Learner(config, 6).models
        second = learner_lib.Learner(config, 6).models
        for name in first:
            paths = set(checkpoint_lib.variables_by_path(first[name]))
            self.assertEqual(paths, set(checkpoint_lib.variables_by_path(second[name])))

    def test_restore_matches_variables_by_path(self):
        saved = _mlp((3, 3))
        directory = self.create_tempdir().full_path
        path = tf.train.Checkpoint(models=checkpoint_lib.model_weights(actor=saved)).save(
            os.path.join(directory, "ckpt")
        )
        restored = _mlp((3, 3))
        checkpoint_lib.restore_models(path, actor=restored)
        for key, variable in checkpoint_lib.variables_by_path(saved).items():
            value = checkpoint_lib.variables_by_path(restored)[key].numpy()
            np.testing.assert_array_equal(value, variable.numpy())

    def test_missing_and_unexpected_variables_are_named(self):
        directory = self.create_tempdir().full_path
        path = tf.train.Checkpoint(models=checkpoint_lib.model_weights(actor=_mlp((3, 3)))).save(
            os.path.join(directory, "ckpt")
        )
        with self.assertRaisesRegex(
            checkpoint_lib.CheckpointMismatch,
            r"actor lacks hidden_2/bias, hidden_2/kernel",
        ):
            checkpoint_lib.restore_models(path, actor=_mlp((3, 3, 3)))
        with self.assertRaisesRegex(
            checkpoint_lib.CheckpointMismatch, r"actor has unexpected hidden_1/bias"
        ):
            checkpoint_lib.restore_models(path, actor=_mlp((3,)))


class SaverTest(testing.TestCase):
    def _saver(self, directory: str, model: keras.Model, replay, step: tf.Variable):
        checkpoint = checkpoint_lib.training_checkpoint({"actor": model}, {}, step=step)
        return checkpoint_lib.Saver(checkpoint, replay, directory, {"actor": model})

    def _two_saves(self) -> str:
        directory = self.create_tempdir().full_path
        model, replay, step = _mlp((3,)), _replay(5), tf.Variable(1)
        saver = self._saver(directory, model, replay, step)
        saver.save()
        replay.add(
            obs_or_frame=np.zeros([8, 8], np.uint8),
            action=0,
            reward=0.0,
            terminated=False,
            truncated=False,
            is_first=False,
        )
        step.assign(2)
        saver.save()
        return directory

    def _restore(self, directory: str) -> tuple[str | None, int, int]:
        replay, step = _replay(0), tf.Variable(0)
        path = self._saver(directory, _mlp((3,)), replay, step).restore()
        return path, int(step), len(replay)

    def test_restores_the_newest_pair(self):
        path, step, replay_len = self._restore(self._two_saves())
        self.assertEqual((os.path.basename(path), step, replay_len), ("ckpt-2", 2, 6))

    def test_a_new_directory_restores_nothing(self):
        self.assertEqual(self._restore(self.create_tempdir().full_path), (None, 0, 0))

    def test_truncated_newest_checkpoint_falls_back_with_a_warning(self):
        directory = self._two_saves()
        (data,) = [n for n in os.listdir(directory) if n.startswith("ckpt-2.data")]
        with open(os.path.join(directory, data), "r+b") as f:
            f.truncate(10)
        with self.assertLogs(level="WARNING") as logs:
            path, step, replay_len = self._restore(directory)
        self.assertEqual((os.path.basename(path), step, replay_len), ("ckpt-1", 1, 5))
        self.assertTrue(any("ckpt-2" in line for line in logs.output), logs.output)

    def test_corrupted_newest_replay_falls_back_with_a_warning(self):
        directory = self._two_saves()
        replay_path = os.path.join(directory, "replay-2.bin")
        with open(replay_path, "r+b") as f:
            f.seek(200)
            byte = f.read(1)
            f.seek(200)
            f.write(bytes([byte[0] ^ 0xFF]))
        with self.assertLogs(level="WARNING") as logs:
            path, step, replay_len = self._restore(directory)
        self.assertEqual((os.path.basename(path), step, replay_len), ("ckpt-1", 1, 5))
        self.assertTrue(any("replay-2.bin" in line for line in logs.output), logs.output)

    def test_no_usable_checkpoint_is_one_error_and_deletes_nothing(self):
        directory = self._two_saves()
        for name in ("replay-1.bin", "replay-2.bin"):
            with open(os.path.join(directory, name), "r+b") as f:
                f.truncate(100)
        before = sorted(os.listdir(directory))
        with self.assertRaisesRegex(
            checkpoint_lib.NoUsableCheckpoint, r"no usable checkpoint in .*ckpt-2.*ckpt-1"
        ):
            self._restore(directory)
        self.assertEqual(sorted(os.listdir(directory)), before)

    @parameterized.parameters("replay", "checkpoint")
    def test_full_disk_keeps_the_previous_checkpoint(self, failing):
        directory = self.create_tempdir().full_path
        model, replay, step = _mlp((3,)), _replay(5), tf.Variable(1)
        saver = self._saver(directory, model, replay, step)
        saver.save()
        before = sorted(os.listdir(directory))
        step.assign(2)
        full = OSError(errno.ENOSPC, "No space left on device")
        if failing == "replay":  # The replay file's fsync fails, as on a full disk.
            patch = mock.patch.object(files.os, "fsync", side_effect=full)
        else:
            patch = mock.patch.object(saver.manager, "save", side_effect=full)
        with (
            patch,
            self.assertRaisesRegex(
                checkpoint_lib.SaveFailed,
                r"saving checkpoint 2 .* failed \(\[Errno 28\] No space left on device\); "
                r"the previous checkpoint \(.*ckpt-1\) is intact",
            ),
        ):
            saver.save()
        self.assertEqual(sorted(os.listdir(directory)), before)
        self.assertEqual(self._restore(directory), (os.path.join(directory, "ckpt-1"), 1, 5))

    def test_a_model_that_does_not_fit_is_not_mistaken_for_damage(self):
        directory = self._two_saves()
        saver = self._saver(directory, _mlp((3, 3)), _replay(0), tf.Variable(0))
        with self.assertRaisesRegex(checkpoint_lib.CheckpointMismatch, "hidden_1"):
            saver.restore()


if __name__ == "__main__":
    absltest.main()

"""Tests for litert_policy: policy.tflite computes the SavedModel's policy, without TensorFlow."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf import files
from twm_tf.deploy import export
from twm_tf.deploy import litert_policy
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.models import actor_critic
from twm_tf.models import observation

_ACTIONS = ("NOOP", "FIRE", "RIGHT", "LEFT")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _edit_json(path: str, **changes) -> None:
    with open(path) as f:
        values = json.load(f)
    _write(path, json.dumps({**values, **changes}).encode())


class LiteRtPolicyTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        """A debug policy with every weight and bias random, exported once."""
        super().setUpClass()
        tf.keras.utils.set_random_seed(0)
        config = config_lib.debug(game="Breakout")
        obs_model = observation.ObservationModel.from_twm_config(config)
        actor = actor_critic.Actor.from_twm_config(config, len(_ACTIONS))
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))
        rng = np.random.default_rng(0)
        # Nonzero biases too: a conversion that dropped or re-initialized any variable shows.
        for variable in obs_model.encoder.variables + actor.variables:
            variable.assign(0.3 * rng.standard_normal(variable.shape).astype(np.float32))
        cls.root = tempfile.mkdtemp()
        cls.policy_dir = export.export_policy(
            os.path.join(cls.root, "policy"), obs_model, actor, config, _ACTIONS
        )
        cls.saved = tf.saved_model.load(cls.policy_dir)
        cls.frames = testdata.stacks(testdata.load("Breakout"))[::8]  # [T/8, 4, 64, 64] uint8

    def test_logits_equal_the_saved_models_at_any_batch(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir)
        # Batch 1, a larger batch, and back: each size re-plans the interpreter.
        for frames in (self.frames[:1], self.frames, self.frames[3:4]):
            expected = self.saved.logits(frames).numpy()
            self.assertGreater(np.ptp(expected), 0.1)
            self.assertAllClose(policy.logits(frames), expected, atol=1e-5)

    def test_greedy_takes_the_argmax_and_probs_are_the_softmax(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir, num_threads=2)
        logits = self.saved.logits(self.frames).numpy()
        actions, probs = policy.act(self.frames, greedy=True)
        self.assertEqual(actions.dtype, np.int32)
        self.assertAllEqual(actions, logits.argmax(axis=-1))
        self.assertAllClose(probs, tf.nn.softmax(logits).numpy(), atol=1e-6)

    def test_sampling_follows_the_probs_and_the_seed(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir, seed=3)
        frames = np.repeat(self.frames[5:6], 20_000, axis=0)
        actions, probs = policy.act(frames)
        frequencies = np.bincount(actions, minlength=len(_ACTIONS)) / len(actions)
        self.assertAllClose(frequencies, probs[0], atol=0.015)  # ~4 standard errors at most.
        policy.set_seed(3)
        self.assertAllEqual(policy.act(frames)[0], actions)
        self.assertNotAllEqual(policy.act(frames)[0], actions)

    def test_rejects_frames_it_would_misread(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir)
        for frames in (
            self.frames[:1].astype(np.float32),
            self.frames[:1, :3],
            self.frames[0],
        ):
            with self.assertRaisesRegex(ValueError, r"frames: expected uint8 \[B, 4, 64, 64\]"):
                policy.logits(frames)

    def test_checks_tensors_as_arrays(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir)
        self.assertAllClose(
            policy.logits(tf.constant(self.frames[:2])), policy.logits(self.frames[:2])
        )
        for frames in (tf.zeros([3, 4, 32, 64], tf.uint8), tf.zeros([1, 4, 64, 64], tf.int32)):
            with self.assertRaisesRegex(ValueError, r"frames: expected uint8 \[B, 4, 64, 64\]"):
                policy.logits(frames)

    def test_a_damaged_export_is_named(self):
        metadata = os.path.join("assets", "metadata.json")
        for damage, message in (
            (lambda d: os.remove(os.path.join(d, metadata)), "cannot read the export's metadata"),
            (
                lambda d: _edit_json(os.path.join(d, metadata), frame_stack=3),
                r"does not take the uint8 frames \[3, 64, 64\] of its metadata",
            ),
            (
                lambda d: _write(os.path.join(d, litert_policy.MODEL_FILE), b"TFL3 damaged"),
                "",
            ),
        ):
            directory = os.path.join(self.create_tempdir().full_path, "policy")
            shutil.copytree(self.policy_dir, directory)
            damage(directory)
            with self.assertRaisesRegex(files.FileError, f"{message}.*a damaged or partial export"):
                litert_policy.LiteRtPolicy(directory)

    def test_an_export_without_the_model_is_named(self):
        directory = self.create_tempdir().full_path
        with self.assertRaisesRegex(FileNotFoundError, "no policy.tflite; re-export"):
            litert_policy.LiteRtPolicy(directory)

    def test_runs_without_tensorflow(self):
        script = (
            "import sys, numpy as np\n"
            "from twm_tf.deploy import litert_policy\n"
            "policy = litert_policy.LiteRtPolicy(sys.argv[1])\n"
            "print(policy.act(np.zeros([2, 4, 64, 64], np.uint8))[0].shape)\n"
            "print('tensorflow' in sys.modules)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, self.policy_dir],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        self.assertEqual(result.stdout.split(), ["(2,)", "False"])


if __name__ == "__main__":
    tf.test.main()

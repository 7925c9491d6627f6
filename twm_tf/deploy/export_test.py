"""Tests for the policy SavedModel: export from a run, equality with the models, standalone load."""

import errno
import json
import os
import re
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from ai_edge_litert import interpreter as litert

from twm_tf import config as config_lib
from twm_tf import files
from twm_tf import learner as learner_lib
from twm_tf import world_model as world_model_lib
from twm_tf.deploy import export
from twm_tf.deploy import litert_policy
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import observation
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import restore

_PONG_ACTIONS = ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]
_SPEC_TEXT = "TensorSpec(shape=(None, 4, 64, 64), dtype=tf.uint8, name='frames')"


def _train_actor(ac: actor_critic.ActorCritic, config: config_lib.Config, steps: int) -> None:
    """A few real actor-critic updates on random one-hot latents, so the weights are trained."""
    rng = np.random.default_rng(1)
    m, h = 8, config.horizon
    for _ in range(steps):
        classes = rng.integers(0, config.latent_classes, (m, h + 1, config.latent_vars))
        z = tf.one_hot(classes, config.latent_classes)
        ac.update(
            z=z,
            actions=rng.integers(0, ac.num_actions, (m, h)),
            rewards=rng.normal(size=(m, h)).astype(np.float32),
            discounts=np.full((m, h), config.gamma, np.float32),
            dones=np.zeros((m, h), bool),
        )


def _saved_logits(path: str, frames: np.ndarray) -> np.ndarray:
    policy = tf.saved_model.load(path)  # Kept alive while its function runs.
    return policy.logits(frames).numpy()


def _probs(wm: world_model_lib.WorldModel, ac: actor_critic.ActorCritic, frames) -> np.ndarray:
    """The in-memory policy: softmax of the actor on the mode of z."""
    z = distributions.latent_mode(wm.observation.encode(tf.constant(frames)))
    return tf.nn.softmax(ac.actor(z)).numpy()


class ExportTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        """One debug run dir with a checkpoint of the agent's structure, exported once."""
        super().setUpClass()
        tf.keras.utils.set_random_seed(0)
        cls.root = tempfile.mkdtemp()
        cls.config = config_lib.debug(game="Pong")
        cls.run_dir = os.path.join(cls.root, "run")
        cls.config.save(cls.run_dir)
        cls.wm = world_model_lib.WorldModel(cls.config, len(_PONG_ACTIONS))
        cls.wm.build()
        cls.ac = actor_critic.ActorCritic(cls.config, len(_PONG_ACTIONS))
        _train_actor(cls.ac, cls.config, steps=3)
        # As twm_tf.trainer.Trainer saves its checkpoints.
        checkpoint = checkpoint_lib.training_checkpoint(*learner_lib.parts(cls.wm, cls.ac))
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(cls.run_dir, "checkpoints"), 2
        )
        manager.save()
        cls.policy_dir = export.export_from_run(cls.run_dir)
        cls.policy = tf.saved_model.load(cls.policy_dir)
        cls.frames = testdata.stacks(testdata.load("Pong"))[::4]  # [T/4, 4, 64, 64] uint8

    @classmethod
    def tearDownClass(cls):
        tf.io.gfile.rmtree(cls.root)
        super().tearDownClass()

    def test_default_path_is_in_the_run_dir(self):
        self.assertEqual(self.policy_dir, os.path.join(self.run_dir, "policy"))

    def test_probs_equal_the_trained_models(self):
        expected = _probs(self.wm, self.ac, self.frames)
        for name in ("serving_default", "greedy"):
            out = self.policy.signatures[name](frames=self.frames)
            self.assertEqual(out["probs"].shape, (len(self.frames), len(_PONG_ACTIONS)))
            self.assertEqual(out["action"].dtype, tf.int32)
            self.assertAllClose(out["probs"], expected, atol=1e-5)
        # The trained actor is not uniform, so equal probabilities mean the weights were restored.
        self.assertGreater(np.ptp(expected, axis=-1).max(), 1e-3)

    def test_restores_exactly_the_checkpointed_weights(self):
        run = restore.load_run(self.run_dir, world_model=False)
        self.assertIsNone(run.world_model)
        obs_model, actor = run.obs_model, run.actor
        pairs = [
            *zip(obs_model.encoder.variables, self.wm.observation.encoder.variables, strict=True),
            *zip(actor.variables, self.ac.actor.variables, strict=True),
        ]
        self.assertLen(pairs, 2 * len(self.config.encoder_channels) + 2 * 2 + 2 * 2)
        for restored, trained in pairs:
            self.assertAllEqual(restored, trained, msg=restored.path)

    def test_greedy_action_is_argmax(self):
        out = self.policy.signatures["greedy"](frames=self.frames)
        self.assertAllEqual(out["action"], np.argmax(out["probs"], axis=-1))

    def test_sampling_follows_probs_and_is_reproducible(self):
        frames = np.repeat(self.frames[:1], 4_000, axis=0)
        self.policy.set_seed(tf.constant(5, tf.int64))
        out = self.policy.signatures["serving_default"](frames=frames)
        counts = np.bincount(out["action"].numpy(), minlength=len(_PONG_ACTIONS))
        self.assertAllClose(counts / len(frames), out["probs"][0], atol=0.03)
        again = self.policy.signatures["serving_default"](frames=frames)["action"]
        self.assertNotAllEqual(again, out["action"])  # Fresh draws on every call.
        self.policy.set_seed(tf.constant(5, tf.int64))
        self.assertAllEqual(
            self.policy.signatures["serving_default"](frames=frames)["action"], out["action"]
        )

    def test_metadata(self):
        info = json.loads(self.policy.metadata_json().numpy())
        self.assertEqual(info["game"], "Pong")
        self.assertEqual(info["action_meanings"], _PONG_ACTIONS)
        self.assertEqual(info["frame_skip"], 4)
        self.assertEqual(
            config_lib.Config(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in info["config"].items()}
            ),
            self.config,
        )
        with open(os.path.join(self.policy_dir, "assets", export.METADATA_FILE)) as f:
            self.assertEqual(json.load(f), info)

    def test_holds_only_encoder_and_actor_variables(self):
        saved = tf.train.list_variables(os.path.join(self.policy_dir, "variables", "variables"))
        saved = {name: shape for name, shape in saved if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}
        encoder, actor = self.wm.observation.encoder, self.ac.actor
        rng_state = [name for name in saved if name.startswith("generator/")]
        self.assertLen(rng_state, 1)
        self.assertLen(saved, len(encoder.variables) + len(actor.variables) + 1)
        sizes = sum(int(np.prod(shape)) for shape in saved.values())
        self.assertEqual(sizes, encoder.count_params() + actor.count_params() + 3)  # Philox: 3.

    @parameterized.named_parameters(
        ("rank_3", np.zeros([4, 64, 64], np.uint8)),
        ("frame_size_63", np.zeros([1, 4, 63, 64], np.uint8)),
        ("stack_3", np.zeros([1, 3, 64, 64], np.uint8)),
    )
    def test_wrong_shape_names_the_spec(self, frames):
        with self.assertRaisesRegex(
            TypeError, "Can not cast.*to " + _SPEC_TEXT.replace("(", r"\(").replace(")", r"\)")
        ):
            self.policy.signatures["serving_default"](frames=frames)

    @parameterized.named_parameters(
        ("half_height", [3, 4, 32, 64]),  # Once one scrambled action for three games.
        ("stack_3", [3, 3, 64, 64]),
        ("rank_3", [4, 64, 64]),
        ("rank_5", [1, 4, 64, 64, 1]),
        ("same_size_other_shape", [2, 8, 64, 32]),
    )
    def test_wrong_shape_tensors_are_refused_by_every_signature(self, shape):
        spec = re.escape(_SPEC_TEXT.replace("'", "\\'"))
        for name in ("serving_default", "greedy"):
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError, f"frames must be {spec}, got shape"
            ):
                self.policy.signatures[name](frames=tf.zeros(shape, tf.uint8))
        with self.assertRaisesRegex(TypeError, re.escape(_SPEC_TEXT)):
            self.policy.logits(tf.zeros(shape, tf.uint8))

    def test_the_litert_model_refuses_frames_of_another_shape(self):
        interpreter = litert.Interpreter(
            model_path=os.path.join(self.policy_dir, litert_policy.MODEL_FILE)
        )
        index = interpreter.get_input_details()[0]["index"]
        for shape in ([3, 4, 32, 64], [3, 3, 64, 64], [2, 8, 64, 32]):
            interpreter.resize_tensor_input(index, shape)  # Not strict: as a caller may.
            interpreter.allocate_tensors()
            interpreter.set_tensor(index, np.zeros(shape, np.uint8))
            with self.assertRaisesRegex(RuntimeError, "RESHAPE"):
                interpreter.invoke()
        interpreter.resize_tensor_input(index, [2, 4, 64, 64])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, self.frames[:2])
        interpreter.invoke()
        self.assertAllClose(
            interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
            self.policy.logits(self.frames[:2]),
            atol=1e-5,
        )

    def test_refuses_an_output_that_is_not_an_export(self):
        root = self.create_tempdir().full_path
        a_file = os.path.join(root, "notes.txt")
        theirs = os.path.join(root, "theirs")
        os.makedirs(theirs)
        for path in (a_file, os.path.join(theirs, "saved_model.pb")):
            with open(path, "w") as f:
                f.write("a user's file")
        for path, message in (
            (a_file, "--output=.*notes.txt is a file, not an export directory"),
            (theirs, "holds no export of launch.export_policy"),
            ("/proc/twm_policy", "--output: cannot write in /proc"),
        ):
            with self.assertRaisesRegex(files.FileError, message):
                export.export_from_run(self.run_dir, path)
        self.assertEqual(sorted(os.listdir(root)), ["notes.txt", "theirs"])
        self.assertEqual(os.listdir(theirs), ["saved_model.pb"])

    def test_a_full_disk_keeps_the_previous_export(self):
        path = os.path.join(self.create_tempdir().full_path, "policy")
        obs_model = observation.ObservationModel.from_twm_config(self.config)
        actor = actor_critic.Actor.from_twm_config(self.config, len(_PONG_ACTIONS))
        export.export_policy(path, obs_model, actor, self.config, _PONG_ACTIONS, jit_compile=False)
        before = _saved_logits(path, self.frames)
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        with mock.patch.object(tf.saved_model, "save", side_effect=full):
            with self.assertRaisesRegex(
                files.FileError, "export .* failed \\(No space left on device\\); the previous"
            ):
                export.export_policy(path, obs_model, actor, self.config, _PONG_ACTIONS)
        self.assertAllEqual(_saved_logits(path, self.frames), before)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["policy"])

    def test_wrong_dtype_tensor_names_uint8(self):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected to be a uint8"):
            self.policy.signatures["greedy"](frames=tf.zeros([1, 4, 64, 64], tf.int32))

    def test_no_checkpoint_is_a_clear_error(self):
        run_dir = self.create_tempdir().full_path
        self.config.save(run_dir)
        with self.assertRaisesRegex(FileNotFoundError, "no checkpoint in .*checkpoints"):
            export.export_from_run(run_dir)
        with self.assertRaisesRegex(
            FileNotFoundError, "no config.json in .*: not a launch.train run directory"
        ):
            export.export_from_run(self.create_tempdir().full_path)

    def test_checkpoint_without_the_actor_is_a_clear_error(self):
        path = tf.train.Checkpoint(
            models=checkpoint_lib.model_weights(observation=self.wm.observation)
        ).save(os.path.join(self.create_tempdir().full_path, "ckpt"))
        obs_model = observation.ObservationModel.from_twm_config(self.config)
        actor = actor_critic.Actor.from_twm_config(self.config, len(_PONG_ACTIONS))
        actor(tf.zeros([1, self.config.latent_vars, self.config.latent_classes]))
        with self.assertRaisesRegex(
            checkpoint_lib.CheckpointMismatch, "actor lacks mlp/hidden_0/bias, mlp/hidden_0/kernel"
        ):
            checkpoint_lib.restore_models(path, observation=obs_model, actor=actor)

    def test_export_replaces_atomically(self):
        path = os.path.join(self.create_tempdir().full_path, "policy")
        obs_model = observation.ObservationModel.from_twm_config(self.config)
        actor = actor_critic.Actor.from_twm_config(self.config, len(_PONG_ACTIONS))
        export.export_policy(path, obs_model, actor, self.config, _PONG_ACTIONS, jit_compile=False)
        before = _saved_logits(path, self.frames)
        other = actor_critic.Actor.from_twm_config(self.config, len(_PONG_ACTIONS))
        with mock.patch.object(tf.saved_model, "save", side_effect=RuntimeError("crash")):
            with self.assertRaisesRegex(RuntimeError, "crash"):
                export.export_policy(path, obs_model, other, self.config, _PONG_ACTIONS)
        # The old export is intact and no staging directory is left behind.
        self.assertAllEqual(_saved_logits(path, self.frames), before)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["policy"])
        export.export_policy(path, obs_model, other, self.config, _PONG_ACTIONS, jit_compile=False)
        self.assertNotAllClose(_saved_logits(path, self.frames), before)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["policy"])

    def test_rejects_mismatched_action_meanings(self):
        with self.assertRaisesRegex(ValueError, "6 actions, action_meanings has 2"):
            export.export_policy(
                self.create_tempdir().full_path,
                self.wm.observation,
                self.ac.actor,
                self.config,
                ["NOOP", "FIRE"],
            )

    def test_loads_and_runs_without_twm_tf(self):
        # A fresh interpreter whose path cannot reach this repository.
        code = (
            "import importlib.util, json, sys\n"
            "import numpy as np, tensorflow as tf\n"
            "assert importlib.util.find_spec('twm_tf') is None\n"
            "policy = tf.saved_model.load(sys.argv[1])\n"
            "frames = np.load(sys.argv[2])\n"
            "out = policy.signatures['greedy'](frames=frames)\n"
            "info = json.loads(policy.metadata_json().numpy())\n"
            "print(json.dumps({'probs': out['probs'].numpy().tolist(), 'game': info['game']}))\n"
        )
        cwd = self.create_tempdir().full_path
        np.save(os.path.join(cwd, "frames.npy"), self.frames[:8])
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        result = subprocess.run(
            [sys.executable, "-c", code, self.policy_dir, "frames.npy"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(out["game"], "Pong")
        self.assertAllClose(out["probs"], _probs(self.wm, self.ac, self.frames[:8]), atol=1e-5)

    @parameterized.parameters("saved_model", "litert")
    def test_measure_latency(self, runtime):
        latency = export.measure_latency(self.policy_dir, iterations=5, runtime=runtime)
        self.assertCountEqual(latency, ["median_ms", "mean_ms", "p90_ms", "min_ms"])
        self.assertGreater(latency["median_ms"], 0.0)

    def test_measure_latency_names_a_bad_runtime_or_signature(self):
        with self.assertRaisesRegex(ValueError, "runtime: expected saved_model or litert, got 'tf"):
            export.measure_latency(self.policy_dir, runtime="tf")
        with self.assertRaisesRegex(ValueError, "signature: expected serving_default or greedy"):
            export.measure_latency(self.policy_dir, signature="sample")

    def test_the_litert_model_computes_the_trained_policy(self):
        policy = litert_policy.LiteRtPolicy(self.policy_dir)
        _, probs = policy.act(self.frames[:8])
        self.assertAllClose(probs, _probs(self.wm, self.ac, self.frames[:8]), atol=1e-5)


if __name__ == "__main__":
    tf.test.main()

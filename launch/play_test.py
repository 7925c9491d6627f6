"""Tests for launch/play.py: its preprocessing equals envs/atari.py, and it runs without twm_tf."""

import os
import re
import shutil
import subprocess
import sys

import imageio
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from launch import play
from twm_tf import config as config_lib
from twm_tf.deploy import export
from twm_tf.dev import testing
from twm_tf.envs import atari
from twm_tf.models import actor_critic
from twm_tf.models import observation


class GameTest(testing.TestCase):
    @parameterized.parameters("Breakout", "Pong")
    def test_matches_the_evaluation_env(self, game):
        # Breakout has FIRE and lives, so its resets and life losses are compared too.
        env = atari.make(game, seed=3, training=False)
        player = play.Game(game, seed=3, frame_skip=4, frame_stack=4, frame_size=64)
        self.assertAllEqual(player.reset(), env.reset())
        rng = np.random.default_rng(0)
        lives_lost = 0
        for step in range(1_500):
            action = int(rng.integers(env.num_actions))
            lives = env.ale.lives()
            expected = env.step(action)
            obs, reward, over = player.step(action)
            lives_lost += env.ale.lives() < lives
            self.assertEqual(reward, expected.reward, msg=f"step {step}")
            self.assertEqual(over, expected.new_game, msg=f"step {step}")
            if over:
                break
            self.assertAllEqual(obs, expected.obs, msg=f"step {step}")
        if game == "Breakout":
            self.assertTrue(over)
            self.assertGreater(lives_lost, 1)

    def test_check_frames_rejects_what_a_runtime_would_cast(self):
        play.check_frames(np.zeros([1, 4, 64, 64], np.uint8), (4, 64, 64))
        for frames in (np.zeros([1, 4, 64, 64], np.float32), np.zeros([1, 3, 64, 64], np.uint8)):
            with self.assertRaisesRegex(ValueError, re.escape("policy expects uint8 frames [1, 4")):
                play.check_frames(frames, (4, 64, 64))


class PlayTest(testing.TestCase):
    @parameterized.parameters("saved_model", "litert")
    def test_plays_and_writes_a_gif_without_twm_tf(self, runtime):
        config = config_lib.debug(game="Breakout")
        actor = actor_critic.Actor.from_twm_config(config, 4)
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))
        cwd = self.create_tempdir().full_path
        export.export_policy(
            os.path.join(cwd, "policy"),
            observation.ObservationModel.from_twm_config(config),
            actor,
            config,
            atari.make("Breakout", seed=0, training=False).action_meanings,
        )
        # play.py alone in a directory, run by an interpreter whose path cannot reach twm_tf.
        shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "play.py"), cwd)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        command = [
            sys.executable,
            "-c",
            "import atexit, importlib.util, runpy, sys; "
            "assert importlib.util.find_spec('twm_tf') is None; "
            "atexit.register(lambda: print('tensorflow loaded:', 'tensorflow' in sys.modules)); "
            "sys.argv = sys.argv[1:]; runpy.run_path('play.py', run_name='__main__')",
            "play.py",
            "--policy=policy",
            f"--runtime={runtime}",
            "--episodes=2",
            "--max_steps=12",
            "--video=episode.gif",
            "--seed=1",
        ]
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        self.assertRegex(result.stdout, r"episode 1: return \S+ in 12 steps")
        self.assertRegex(result.stdout, r"episode 2: return \S+ in 12 steps")
        self.assertRegex(result.stdout, r"Breakout: mean return \S+ over 2 episodes")
        self.assertRegex(result.stdout, r"policy step latency \(batch 1\): median [0-9.]+ ms")
        # LiteRT runs the policy without TensorFlow.
        self.assertIn(f"tensorflow loaded: {runtime == 'saved_model'}", result.stdout)
        frames = imageio.mimread(os.path.join(cwd, "episode.gif"))
        self.assertLen(frames, 12)
        self.assertEqual(frames[0].shape[:2], (210, 160))

    def test_litert_on_an_export_without_policy_tflite_names_the_fix(self):
        config = config_lib.debug(game="Pong")
        actor = actor_critic.Actor.from_twm_config(config, 6)
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))
        policy = os.path.join(self.create_tempdir().full_path, "policy")
        meanings = atari.make("Pong", seed=0, training=False).action_meanings
        export.export_policy(
            policy, observation.ObservationModel.from_twm_config(config), actor, config, meanings
        )
        os.remove(os.path.join(policy, "policy.tflite"))  # As exports before LiteRT support.
        result = subprocess.run(
            [sys.executable, "-m", "launch.play", f"--policy={policy}", "--runtime=litert"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("has no policy.tflite for --runtime=litert", result.stderr)
        self.assertIn("export it again or use --runtime=saved_model", result.stderr)


if __name__ == "__main__":
    tf.test.main()

"""Tests of the world model as a Gymnasium environment (DreamEnv) and its keyboard play."""

import os
import shutil
import tempfile
import warnings

os.environ["SDL_VIDEODRIVER"] = "dummy"  # pygame's headless display, before pygame starts
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from absl.testing import absltest  # noqa: E402
from gymnasium.utils import env_checker  # noqa: E402

from twm_tf import config as config_lib  # noqa: E402
from twm_tf import envs  # noqa: E402
from twm_tf.analysis import dream as analysis_dream  # noqa: E402
from twm_tf.analysis import world_model_quality  # noqa: E402
from twm_tf.dev import testdata  # noqa: E402
from twm_tf.dev import testing  # noqa: E402
from twm_tf.envs import dream  # noqa: E402
from twm_tf.envs import dream_play  # noqa: E402
from twm_tf.envs import dream_render  # noqa: E402
from twm_tf.replay import buffer as replay  # noqa: E402
from twm_tf.run import checkpoint  # noqa: E402
from twm_tf.run import restore  # noqa: E402

_PONG_ACTIONS = 6  # NOOP, FIRE, RIGHT, LEFT, RIGHTFIRE, LEFTFIRE
_STEPS = 6


class DreamEnvTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        """A Pong debug-preset run dir (random weights) with the Pong recording as its replay."""
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.config = config_lib.debug(game="Pong", dyn_dropout=0.0)
        cls.run_dir = os.path.join(cls.root, "run")
        prefix = testing.untrained_run(cls.run_dir, cls.config, _PONG_ACTIONS)
        recording = testdata.load("Pong")
        buffer = replay.ReplayBuffer(capacity=len(recording.actions), tau=1.0, seed=0)
        testdata.add_to(buffer, recording)
        buffer.save(checkpoint.replay_path(prefix))
        cls.buffer = buffer
        cls.models = restore.load_run(cls.run_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)

    def make(self, **kwargs) -> dream.DreamEnv:
        env = dream.DreamEnv(run=self.models, render_mode="rgb_array", **kwargs)
        self.addCleanup(env.close)
        return env

    def test_passes_gymnasiums_env_checker(self):
        env = gymnasium.make(envs.DREAM_ID, run_dir=self.run_dir, render_mode="rgb_array")
        self.addCleanup(env.close)
        self.assertIsInstance(env.unwrapped, dream.DreamEnv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env_checker.check_env(env.unwrapped)
        self.assertEmpty([str(w.message) for w in caught if "WARN:" in str(w.message)])

    def test_reset_and_step_shapes_and_dtypes(self):
        env, config = self.make(), self.config
        obs, info = env.reset(seed=1)
        self.assertEqual(obs.shape, (4, 64, 64))
        self.assertEqual(obs.dtype, np.uint8)
        self.assertIn(obs, env.observation_space)
        self.assertEqual(info["real_obs"].shape, (4, 64, 64))
        self.assertEqual(env.action_space.n, _PONG_ACTIONS)
        obs, reward, terminated, truncated, info = env.step(2)
        self.assertIn(obs, env.observation_space)
        self.assertIsInstance(reward, float)
        self.assertIsInstance(terminated, bool)
        self.assertFalse(truncated)
        keys = 3 * (config.memory_steps + 2)
        self.assertEqual(info["attention"].shape, (config.dyn_layers, config.dyn_heads, keys))
        self.assertAllClose(info["attention"].sum(-1), np.ones([config.dyn_layers, 2]))
        self.assertEqual(info["z"].shape, (config.latent_vars, config.latent_classes))
        self.assertAllEqual(info["z"].sum(-1), np.ones(config.latent_vars))
        self.assertAllClose(np.tanh(reward), info["reward_tanh"], atol=1e-6)
        self.assertEqual(reward, info["reward_raw"])
        self.assertBetween(info["discount"], 0.0, 1.0)
        image = env.render()
        self.assertEqual(image.dtype, np.uint8)
        self.assertEqual(image.ndim, 3)
        self.assertEqual(image.shape[2], 3)
        self.assertAllEqual(np.array(image.shape[:2]) % 16, [0, 0])

    def test_tanh_reward_scale(self):
        env = self.make(reward_scale="tanh")
        env.reset(seed=1)
        _, reward, _, _, info = env.step(0)
        self.assertEqual(reward, info["reward_tanh"])

    def test_agent_playing_equals_the_analysis_dream(self):
        # The same game start, seeds and policy as twm_tf/analysis/dream.dream_from_run give the
        # same imagined steps, and the real game beside the dream the same real frames.
        warmup, seed = 7, 5
        expected = analysis_dream.dream_from_run(
            self.models, steps=_STEPS, warmup=warmup, seed=seed
        )
        env = self.make(context_steps=warmup, side_by_side=True)
        obs, info = env.reset(seed=seed)
        frames, real, actions, rewards, discounts, latents, attention = (
            [obs[-1]],
            [info["real_obs"][-1]],
            [],
            [],
            [],
            [info["z"]],
            [],
        )
        for _ in range(_STEPS):
            actions.append(env.agent_action())
            obs, _, _, _, info = env.step(actions[-1])
            frames.append(obs[-1])
            real.append(info["real_obs"][-1])
            rewards.append(info["reward_tanh"])
            discounts.append(info["discount"])
            latents.append(info["z"])
            attention.append(info["attention"])
        self.assertAllEqual(actions, expected.actions)
        self.assertAllEqual(latents, expected.latents)
        self.assertAllClose(frames, expected.imagined, atol=1)
        self.assertAllClose(rewards, expected.rewards, atol=1e-5)
        self.assertAllClose(discounts, expected.discounts, atol=1e-5)
        self.assertAllClose(attention, expected.attention, atol=1e-5)
        self.assertAllEqual(real, expected.real)

    def test_recorded_start_equals_imagine_from_the_recording(self):
        index, context_steps, seed = 40, 3, 2
        env = self.make(start="recorded", context_steps=context_steps, latent="mode")
        _, info = env.reset(seed=seed, options={"start_index": index})
        steps = world_model_quality.from_recording(testdata.load("Pong"), stack=4)
        self.assertAllEqual(info["real_obs"], steps.obs[index])
        context = world_model_quality.Transitions(
            *(field[index - context_steps : index] for field in steps)
        )
        expected = analysis_dream.imagine(
            self.models, context, steps.obs[index], _STEPS, seed=seed, latent="mode"
        )
        for k in range(_STEPS):
            self.assertEqual(env.agent_action(), expected.actions[k])
            obs, _, _, _, info = env.step(int(expected.actions[k]))
            self.assertAllEqual(info["z"], expected.latents[k + 1])
            self.assertAllClose(obs[-1], expected.imagined[k + 1], atol=1)

    def test_replay_start_reads_the_checkpoints_replay_file(self):
        env = self.make(start="replay")
        _, info = env.reset(seed=0, options={"start_index": 123})
        self.assertAllEqual(info["real_obs"], self.buffer.observations(np.array([123]))[0])
        self.assertEqual(info["start"], f"replay step 123 of {len(self.buffer)}")

    def test_seed_determines_the_dream(self):
        def play(env, seed):
            obs, _ = env.reset(seed=seed)
            observations = [obs]
            for action in [0, 2, 2, 3, 1, 4]:
                observations.append(env.step(action)[0])
            return np.stack(observations), env.step(0)[4]

        env, other = self.make(), self.make()
        first, info = play(env, 3)
        again, info_again = play(other, 3)
        self.assertAllEqual(first, again)
        self.assertTrue(env_checker.data_equivalence(info, info_again, exact=True))
        different, _ = play(env, 4)
        self.assertNotAllEqual(first, different)

    def test_terminated_below_the_threshold_and_truncated_at_the_limit(self):
        env = self.make(terminal_threshold=1.0)  # every predicted discount is below 1
        env.reset(seed=0)
        self.assertTrue(env.step(0)[2])
        env = self.make(max_steps=2)
        env.reset(seed=0)
        self.assertFalse(env.step(0)[3])
        self.assertTrue(env.step(0)[3])
        with self.assertRaisesRegex(RuntimeError, "truncated after 2 steps"):
            env.step(0)

    def test_setting_a_latent_cell_changes_z_and_the_frame(self):
        env, config = self.make(), self.config
        env.reset(seed=0)
        _, _, _, _, info = env.step(0)
        variable = 1
        value = (int(np.argmax(info["z"][variable])) + 1) % config.latent_classes
        x, y = self.cell_center(env, variable, value)
        self.assertEqual(env.latent_at(x, y), (variable, value))
        self.assertIsNone(env.latent_at(1, 1))  # the frame, not the grid
        env.set_latent(variable, value)
        z = info["z"].copy()
        z[variable] = np.eye(config.latent_classes)[value]
        decoded = analysis_dream.to_pixels(self.models.world_model.observation.decode(z[None])[0])
        self.assertAllEqual(env.render(), env.render())
        self.assertAllEqual(env._state["obs"], decoded)  # noqa: SLF001

    def cell_center(self, env, variable: int, value: int) -> tuple[float, float]:
        """Pixel of the latent grid cell, found from latent_at over the rendered image."""
        height, width = env.render().shape[:2]
        for y in range(height):
            for x in range(width):
                if env.latent_at(x, y) == (variable, value):
                    return x + 1, y + 1
        self.fail(f"no grid cell {variable, value} in the image")

    def test_side_by_side_renders_the_real_game_left_of_the_dream(self):
        plain, both = self.make(), self.make(side_by_side=True)
        plain.reset(seed=0)
        _, info = both.reset(seed=0)
        self.assertGreater(both.render().shape[1], plain.render().shape[1])
        _, _, _, _, info = both.step(2)
        self.assertEqual(info["real_obs"].shape, (4, 64, 64))
        self.assertIn("real_reward", info)
        frame = both.render()[dream_render.HEADER : dream_render.HEADER + 256, :256, 0]
        self.assertAllEqual(frame[::4, ::4], info["real_obs"][-1])

    def test_one_line_errors(self):
        with self.assertRaisesRegex(FileNotFoundError, r"^no checkpoint in .*checkpoints"):
            empty = os.path.join(self.root, "config_only")
            self.config.save(empty)
            dream.DreamEnv(empty)
        env = self.make()
        env.reset(seed=0)
        with self.assertRaisesRegex(ValueError, r"action 6 is out of range: Pong has 6 actions"):
            env.step(6)
        with self.assertRaisesRegex(ValueError, "out of range"):
            env.step(-1)
        with self.assertRaisesRegex(ValueError, "side_by_side needs start='game'"):
            self.make(start="recorded", side_by_side=True)
        with self.assertRaisesRegex(ValueError, r"unknown reset options \['start'\]"):
            env.reset(options={"start": 3})
        with self.assertRaisesRegex(RuntimeError, "call reset"):
            self.make().step(0)

    def test_keyboard_play_takes_the_games_keys(self):
        # Scripted key presses through pygame's event queue under the dummy video driver: play()
        # reads them after step i, so they choose the action of step i + 1.
        import pygame

        script = {
            0: [(pygame.KEYDOWN, pygame.K_d)],  # RIGHT
            2: [(pygame.KEYDOWN, pygame.K_SPACE)],  # RIGHT + FIRE
            3: [(pygame.KEYUP, pygame.K_d)],  # FIRE
            4: [(pygame.KEYUP, pygame.K_SPACE)],  # nothing: NOOP
            5: [(pygame.KEYDOWN, pygame.K_a), (pygame.KEYDOWN, pygame.K_d)],  # no such combo
            6: [(pygame.KEYUP, pygame.K_d)],  # LEFT
        }
        actions, images = [], []

        def on_step(action, info, image):
            del info
            for kind, key in script.get(len(actions), []):
                pygame.event.post(pygame.event.Event(kind, key=key))
            actions.append(action)
            images.append(image)
            if len(actions) == 8:
                pygame.event.post(pygame.event.Event(pygame.QUIT))

        env = gymnasium.make(envs.DREAM_ID, run=self.models, render_mode="rgb_array")
        dream_play.play_keyboard(env, fps=1000, seed=0, on_step=on_step)
        env.close()
        self.assertEqual(actions, [0, 2, 2, 4, 1, 0, 0, 3])
        self.assertEqual(images[0].shape, env.unwrapped.render().shape)

    def test_clicks_on_the_window_set_latent_cells(self):
        import pygame

        env = self.make()
        env.reset(seed=0)
        height, width = env.render().shape[:2]
        self.addCleanup(pygame.display.quit)
        dream_play.check_display()  # the dummy driver was asked for
        pygame.display.set_mode((2 * width, 3 * height))  # scaled by 2 and centred vertically
        variable = 2
        value = (int(np.argmax(env._state["z"].numpy()[0, variable])) + 1) % 4  # noqa: SLF001
        x, y = self.cell_center(env, variable, value)
        pos = (2 * x, 2 * y + height / 2)
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))
        dream_play._MouseEdits(env)()  # noqa: SLF001
        self.assertEqual(np.argmax(env._state["z"].numpy()[0, variable]), value)  # noqa: SLF001

    def test_agent_plays_in_a_window(self):
        env = self.make()
        actions = []
        images = dream_play.play_agent(
            env, steps=3, fps=1000, window=True, seed=0, on_step=lambda a, i, im: actions.append(a)
        )
        self.assertLen(images, 4)
        self.assertLen(actions, 3)

    def test_agent_play_records_without_a_window(self):
        env = self.make()
        infos = []
        images = dream_play.play_agent(
            env, steps=4, fps=15, window=False, seed=0, on_step=lambda a, i, im: infos.append(i)
        )
        self.assertLen(images, 5)
        self.assertLen(infos, 4)
        path = os.path.join(self.create_tempdir().full_path, "dream.gif")
        dream_play.write_video(path, images, fps=15)
        self.assertGreater(os.path.getsize(path), 1_000)


if __name__ == "__main__":
    absltest.main()

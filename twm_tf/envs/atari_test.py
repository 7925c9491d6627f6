"""Tests for the Atari 100k environment: preprocessing, resets, lives, vectorization, snapshots."""

import cv2
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.envs import atari

_NOOP, _FIRE = 0, 1
_FIRE_RESET = ((_FIRE, 4), (2, 4))  # FIRE and action 2, one 4-frame agent step each.


def _random_actions(num_actions: int, num_steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(num_actions, size=num_steps)


def _run(env: atari.AtariEnv, actions) -> tuple[np.ndarray, list[atari.Step]]:
    first = env.reset()
    return first, [env.step(int(action)) for action in actions]


def _assert_steps_equal(test: testing.TestCase, steps_a, steps_b) -> None:
    test.assertEqual(len(steps_a), len(steps_b))
    # One comparison per field over all steps: per-step assertAllEqual calls dominate the runtime.
    for name, field_a, field_b in zip(atari.Step._fields, zip(*steps_a), zip(*steps_b)):
        test.assertAllEqual(np.stack(field_a), np.stack(field_b), msg=name)


def _by_hand(env: atari.AtariEnv, plan) -> np.ndarray:
    """Acts plan's (action, num_frames) pairs on the bare emulator; pools the last two screens."""
    screens = [env.ale.getScreenGrayscale()]
    for action, num_frames in plan:
        for _ in range(num_frames):
            env.ale.act(env.ale.getMinimalActionSet()[action])
            screens.append(env.ale.getScreenGrayscale())
    return atari.pool_frames(screens[-2] if len(screens) > 1 else screens[-1], screens[-1], 64)


def _steps_until(env: atari.AtariEnv, predicate, limit: int = 1_000) -> list[atari.Step]:
    """NOOP steps until predicate(step) holds; returns them all."""
    steps = []
    while not steps or not predicate(steps[-1]):
        if len(steps) == limit:
            raise AssertionError(f"condition not reached within {limit} steps")
        steps.append(env.step(_NOOP))
    return steps


class AtariTest(testing.TestCase):
    def test_games_table(self):
        self.assertLen(atari.GAMES, 26)
        self.assertContainsSubset(("Pong", "Breakout", "MsPacman", "UpNDown"), atari.GAMES)

    def test_unknown_game_lists_valid_names(self):
        with self.assertRaisesRegex(ValueError, "unknown game 'Pacman'.*Alien, Amidar.*UpNDown"):
            atari.make("Pacman", seed=0, training=True)

    @parameterized.parameters(True, False)
    def test_observations(self, training):
        env = atari.make("Breakout", seed=0, training=training)
        self.assertEqual(env.num_actions, 4)
        self.assertEqual(env.action_meanings, ("NOOP", "FIRE", "RIGHT", "LEFT"))
        first, steps = _run(env, _random_actions(env.num_actions, 50))
        for obs in [first] + [step.obs for step in steps]:
            self.assertEqual(obs.shape, (4, 64, 64))
            self.assertEqual(obs.dtype, np.uint8)
            # Frames show the game (walls, bricks), not a blank or saturated screen.
            self.assertBetween(obs.mean(), 10.0, 200.0)
        self.assertEqual(steps[0].reward.dtype, np.float32)

    def test_reset_stack_repeats_first_frame(self):
        obs = atari.make("Pong", seed=0, training=True).reset()
        for frame in obs[:-1]:
            self.assertAllEqual(frame, obs[-1])

    def test_stack_shifts_newest_frame_last(self):
        env = atari.make("Pong", seed=0, training=True)
        previous, steps = _run(env, _random_actions(env.num_actions, 30))
        for step in steps:
            self.assertFalse(step.is_first)
            self.assertAllEqual(step.obs[:-1], previous[1:])
            previous = step.obs
        # The ball and paddles move, so the newest frames are not all copies.
        self.assertNotAllEqual(previous[-1], previous[0])

    def test_same_seed_same_steps(self):
        actions = _random_actions(6, 200)
        runs = [_run(atari.make("Pong", seed=seed, training=True), actions) for seed in (7, 7, 8)]
        (first_a, steps_a), (first_b, steps_b), (first_c, _) = runs
        self.assertAllEqual(first_a, first_b)
        _assert_steps_equal(self, steps_a, steps_b)
        self.assertTrue(any(step.reward for step in steps_a))
        # Another seed takes other no-ops at reset, so it starts elsewhere.
        self.assertNotAllEqual(first_a, first_c)

    @parameterized.parameters(("Pong", 8), ("MsPacman", 0))
    def test_training_reset_takes_1_to_noop_max_noop_frames(self, game, fire_frames):
        # Episode frames after a reset: one per no-op, plus FIRE and action 2 (4 each) in Pong;
        # MsPacman has no FIRE.
        env = atari.make(game, seed=0, training=True, noop_max=30)
        noops = []
        for _ in range(40):
            env.reset()
            noops.append(env.ale.getEpisodeFrameNumber() - fire_frames)
        self.assertBetween(min(noops), 1, 5)
        self.assertBetween(max(noops), 26, 30)
        self.assertGreater(len(set(noops)), 15)  # Drawn uniformly, not fixed.

    @parameterized.parameters(("Pong", 8), ("MsPacman", 0))
    def test_evaluation_reset_takes_no_noops(self, game, fire_frames):
        env = atari.make(game, seed=0, training=False, noop_max=30)
        for _ in range(3):
            env.reset()
            self.assertEqual(env.ale.getEpisodeFrameNumber(), fire_frames)

    @parameterized.parameters(
        ("Breakout", True, 1),
        ("Breakout", True, 30),
        ("Breakout", False, 30),
        ("MsPacman", True, 1),
        ("MsPacman", True, 30),
        ("MsPacman", False, 30),
    )
    def test_reset_observation_pools_last_two_frames(self, game, training, noop_max):
        env = atari.make(game, seed=0, training=training, noop_max=noop_max)
        obs = env.reset()
        fire_reset = _FIRE_RESET if game == "Breakout" else ()
        num_noops = env.ale.getEpisodeFrameNumber() - 4 * len(fire_reset)
        if training:
            self.assertBetween(num_noops, 1, noop_max)
        else:
            self.assertEqual(num_noops, 0)
        for frame in obs[:-1]:
            self.assertAllEqual(frame, obs[-1])
        # The same no-op frames and steps by hand on a fresh emulator of the same seed.
        plan = ((_NOOP, num_noops),) + fire_reset
        bare = atari.make(game, seed=0, training=training)
        bare.ale.reset_game()
        self.assertAllEqual(obs[-1], _by_hand(bare, plan))
        if fire_reset:
            # Action 2 (RIGHT) moved the paddle: a NOOP in its place shows another frame.
            bare.ale.reset_game()
            self.assertNotAllEqual(obs[-1], _by_hand(bare, plan[:-1] + ((_NOOP, 4),)))

    def test_life_loss_in_fire_game_presses_fire(self):
        env = atari.make("Breakout", seed=0, training=True)
        bare = atari.make("Breakout", seed=0, training=True)  # Replays steps by hand.
        env.reset()
        num_life_losses = 0
        while num_life_losses < 2:
            state = env.ale.cloneState(include_rng=True)
            frame = env.ale.getEpisodeFrameNumber()
            step = env.step(_NOOP)
            if not step.terminated:
                self.assertEqual(env.ale.getEpisodeFrameNumber(), frame + 4)
                continue
            num_life_losses += 1
            # The losing step's NOOP frames, then a FIRE step; its last two screens are pooled.
            self.assertEqual(env.ale.getEpisodeFrameNumber(), frame + 8)
            bare.ale.restoreState(state)
            self.assertAllEqual(step.obs[-1], _by_hand(bare, ((_NOOP, 4), (_FIRE, 4))))
            bare.ale.restoreState(state)
            self.assertNotAllEqual(step.obs[-1], _by_hand(bare, ((_NOOP, 8),)))

    def test_max_pool_of_last_two_frames(self):
        env = atari.make("Pong", seed=0, training=True)
        env.reset()
        for action in _random_actions(env.num_actions, 40):
            env.step(int(action))
        state = env.ale.cloneState()
        obs = env.step(2).obs
        env.ale.restoreState(state)
        screens = []
        for _ in range(4):
            env.ale.act(env.ale.getMinimalActionSet()[2])
            screens.append(env.ale.getScreenGrayscale())
        pooled = np.maximum(screens[2], screens[3])
        expected = cv2.resize(pooled, (64, 64), interpolation=cv2.INTER_AREA)
        self.assertAllEqual(obs[-1], expected)

    def test_pool_frames_keeps_both_screens(self):
        screen_a = np.zeros((210, 160), np.uint8)
        screen_b = np.zeros((210, 160), np.uint8)
        screen_a[:105, :80] = 200  # A sprite drawn only in the older frame ...
        screen_b[105:, 80:] = 100  # ... and one only in the newer frame.
        frame = atari.pool_frames(screen_a, screen_b, 64)
        self.assertEqual((frame.shape, frame.dtype), ((64, 64), np.uint8))
        self.assertAllEqual(frame[:32, :32], np.full((32, 32), 200))
        self.assertAllEqual(frame[32:, 32:], np.full((32, 32), 100))
        self.assertAllEqual(frame[:32, 32:], np.zeros((32, 32)))

    def test_training_life_loss_terminates_without_reset(self):
        env = atari.make("Breakout", seed=0, training=True)
        env.reset()
        self.assertEqual(env.ale.lives(), 5)
        steps = _steps_until(env, lambda step: step.terminated)
        last = steps[-1]
        self.assertTrue(last.is_first)
        self.assertFalse(last.new_game or last.truncated)
        self.assertEqual(env.ale.lives(), 4)  # The same game goes on.
        for frame in last.obs[:-1]:
            self.assertAllEqual(frame, last.obs[-1])
        # FIRE after the life loss relaunched the ball: with NOOPs only, the next life is lost too.
        steps = _steps_until(env, lambda step: step.terminated)
        self.assertEqual(env.ale.lives(), 3)
        self.assertFalse(steps[-1].new_game)
        self.assertAllEqual(steps[0].obs[:-1], last.obs[1:])
        # The last life ends the game: a real reset.
        for _ in range(3):
            steps = _steps_until(env, lambda step: step.terminated)
        self.assertTrue(steps[-1].new_game)
        self.assertEqual(env.ale.lives(), 5)

    def test_evaluation_episode_is_whole_game(self):
        env = atari.make("Breakout", seed=0, training=False)
        env.reset()
        lives = []
        step = env.step(_NOOP)
        while not step.is_first:
            self.assertFalse(step.terminated or step.truncated)
            lives.append(env.ale.lives())
            step = env.step(_NOOP)
        # Lives 4..1 were lost inside the episode (FIRE relaunched the ball); game over ends it.
        self.assertEqual(sorted(set(lives)), [1, 2, 3, 4, 5])
        self.assertTrue(step.terminated and step.new_game)
        self.assertEqual(env.ale.lives(), 5)

    def test_time_limit_truncates_and_resets(self):
        env = atari.make("Pong", seed=0, training=True, max_episode_steps=20)
        _, steps = _run(env, [_NOOP] * 40)
        ends = [i for i, step in enumerate(steps) if step.is_first]
        self.assertEqual(ends, [19, 39])
        for i in ends:
            self.assertTrue(steps[i].truncated and steps[i].new_game)
            self.assertFalse(steps[i].terminated)
        # The limit counts the whole game: life losses in between do not restart it.
        env = atari.make("Breakout", seed=0, training=True, max_episode_steps=100)
        _, steps = _run(env, [_NOOP] * 100)
        self.assertGreater(sum(step.terminated for step in steps), 1)  # Lives lost, no game over.
        self.assertFalse(any(step.new_game for step in steps[:-1]))
        self.assertTrue(steps[-1].truncated and steps[-1].new_game)

    def test_restored_state_continues_identically(self):
        # Random Breakout play loses a life every ~25 steps; the short time limit adds truncations,
        # so the snapshot sits mid-game after a life loss and a reset, and its continuation covers
        # life losses and resets (emulator reset, no-ops drawn from the restored generator).
        actions = _random_actions(4, 330, seed=2)
        env_a = atari.make("Breakout", seed=0, training=True, max_episode_steps=100)
        _, before = _run(env_a, actions[:130])
        state = env_a.get_state()
        after = [env_a.step(int(action)) for action in actions[130:]]
        for steps in (before, after):
            self.assertTrue(any(step.terminated and not step.new_game for step in steps))
            self.assertTrue(any(step.new_game for step in steps))
        self.assertTrue(any(step.truncated for step in after))
        self.assertBetween(state.lives, 1, 4)  # Mid-game: the lives counter matters.

        final = env_a.get_state().to_bytes()
        data = state.to_bytes()
        for restored in (state, atari.EnvState.from_bytes(data)):
            env_b = atari.make("Breakout", seed=1, training=True, max_episode_steps=100)
            env_b.reset()
            env_b.set_state(restored)
            _assert_steps_equal(self, after, [env_b.step(int(action)) for action in actions[130:]])
            # Equal end states also cover what the observations have not shown yet: Breakout's
            # screen can look the same after different no-op counts.
            self.assertEqual(env_b.get_state().to_bytes(), final)
        self.assertEqual(atari.EnvState.from_bytes(data).to_bytes(), data)

    def test_set_state_rejects_other_game_or_settings(self):
        env = atari.make("Breakout", seed=0, training=True)
        env.reset()
        state = env.get_state()
        with self.assertRaisesRegex(ValueError, "from game Breakout, this env plays Pong"):
            atari.make("Pong", seed=0, training=True).set_state(state)
        with self.assertRaisesRegex(ValueError, "settings.*'training': True.*'training': False"):
            atari.make("Breakout", seed=0, training=False).set_state(state)

    def test_from_config(self):
        config = config_lib.debug(game="Breakout", max_episode_steps=5)
        env = atari.from_config(config, training=False, seed=0)
        self.assertEqual((env.game, env.num_actions, env.training), ("Breakout", 4, False))
        env.reset()
        steps = [env.step(_NOOP) for _ in range(5)]
        self.assertEqual([s.truncated for s in steps], [False] * 4 + [True])

    def test_invalid_use(self):
        env = atari.make("Pong", seed=0, training=True)
        with self.assertRaisesRegex(RuntimeError, "reset"):
            env.step(0)
        env.reset()
        with self.assertRaisesRegex(ValueError, r"\[0, 6\)"):
            env.step(6)
        with self.assertRaisesRegex(ValueError, "frame_skip"):
            atari.make("Pong", seed=0, training=True, frame_skip=1)


if __name__ == "__main__":
    absltest.main()

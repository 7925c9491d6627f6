"""The Atari 100k environment: ALE games with the protocol's preprocessing, resets and life rules.

One agent step repeats the action for `frame_skip` emulator frames, max-pools the last two grayscale
screens (Atari sprites flicker between frames) and resizes to 64x64 with area interpolation; the
observation stacks the 4 most recent such frames, oldest first:

    obs[t] = [frame[t-3], frame[t-2], frame[t-1], frame[t]]      [4, 64, 64] uint8

Episodes reset themselves: a step that ends an episode returns the first observation of the next
one (`is_first`), whose stack repeats its frame 4 times; the final observation is dropped because
the world model never predicts across an episode end. Rules (docs/spec.md, "Environment"):

- Real resets start a new game; in training mode they take 1..noop_max uniform random no-op
  emulator frames (single frames, not agent steps, as gymnasium's AtariPreprocessing).
- Games whose action 1 is FIRE (and that have >= 3 actions) then take a FIRE step and an action-2
  step (baselines' FireResetEnv, each a full step of frame_skip frames; their rewards are dropped,
  and a game that ends during them is reset again). After a life loss they take a FIRE step within
  the losing step, so play goes on.
- Training mode: losing a life terminates the episode for learning (discount target 0) but not the
  game; the next episode continues the same game from a fresh stack, without no-ops.
- Evaluation mode: no no-ops; an episode is a whole game.
- Both: `max_episode_steps` agent steps per game truncate it (no-ops and FIRE presses not counted);
  the count runs over the whole game, across life losses.

The first observation of a game pools the last two frames of the reset: those of the action-2 step
in FIRE games, else the last two of the reset screen and the no-op frames.

Rewards stay raw game scores (the agent squashes them with tanh for learning). `get_state` and
`set_state` snapshot an env so that a resumed training run steps exactly as an uninterrupted one.
"""

from typing import NamedTuple

import ale_py
import cv2
import gymnasium as gym
import numpy as np

from twm_tf import config as config_lib
from twm_tf import games
from twm_tf.envs.env_state import EnvState

_NOOP, _FIRE = 0, 1


GAMES = games.GAMES  # The 26 Atari 100k games, as named in atari100k.csv and ALE/<game>-v5.


class Step(NamedTuple):
    """The result of one agent step.

    Attributes:
        obs: [4, 64, 64] uint8, the observation to act on next (the reset one if the episode ended).
        reward: float32, raw game reward of the step, FIRE presses after a life loss included.
        terminated: bool, the step ended the episode by game over or, in training mode, a life loss.
        truncated: bool, the step reached max_episode_steps of the current game.
        is_first: bool, `obs` begins a new episode (its stack repeats one frame); equals
            terminated or truncated.
        new_game: bool, the game ended (game over or time limit) and `obs` comes from a real reset;
            a raw-score episode ends here. In evaluation mode equals is_first.
    """

    obs: np.ndarray
    reward: np.float32 | np.ndarray
    terminated: bool | np.ndarray
    truncated: bool | np.ndarray
    is_first: bool | np.ndarray
    new_game: bool | np.ndarray


def pool_frames(screen_a: np.ndarray, screen_b: np.ndarray, size: int) -> np.ndarray:
    """Max-pools two grayscale screens [210, 160] uint8 and resizes to [size, size] uint8."""
    return cv2.resize(np.maximum(screen_a, screen_b), (size, size), interpolation=cv2.INTER_AREA)


class AtariEnv:
    """One ALE game with the Atari 100k preprocessing; build it with `make`.

    The ALE is driven directly (not through gymnasium wrappers): one `act` and at most two screen
    reads per frame keep it at several thousand agent steps per second.
    """

    def __init__(
        self,
        ale_env: gym.Env,
        *,
        game: str,
        seed: int,
        training: bool,
        noop_max: int,
        max_episode_steps: int,
        frame_skip: int,
        frame_stack: int,
        frame_size: int,
    ):
        unwrapped = ale_env.unwrapped
        self._ale_env = ale_env
        self.game = game
        self.ale: ale_py.ALEInterface = unwrapped.ale  # The emulator, for tests and diagnostics.
        self._action_set = self.ale.getMinimalActionSet()  # Agent action index -> ALE action.
        self.action_meanings: tuple[str, ...] = tuple(unwrapped.get_action_meanings())
        self.num_actions = len(self.action_meanings)
        self.training = training
        self._has_fire = self.num_actions >= 3 and self.action_meanings[1] == "FIRE"
        self._noop_max = noop_max if training else 0
        self._settings = {
            "training": training,
            "noop_max": noop_max,
            "max_episode_steps": max_episode_steps,
            "frame_skip": frame_skip,
            "frame_stack": frame_stack,
            "frame_size": frame_size,
        }
        self._max_episode_steps = max_episode_steps
        self._frame_skip = frame_skip
        self._frame_size = frame_size
        self._rng = np.random.default_rng(seed)
        height, width = self.ale.getScreenDims()
        self._screens = np.zeros((2, height, width), np.uint8)  # The last two raw frames.
        self._stack = np.zeros((frame_stack, frame_size, frame_size), np.uint8)
        self._lives = 0
        self._game_steps = 0
        self._started = False

    def reset(self) -> np.ndarray:
        """Starts a new game and returns its first observation [4, 64, 64] uint8."""
        self._started = True
        return self._reset_game()

    def step(self, action: int) -> Step:
        """Takes `action` (an index into action_meanings); resets itself after an episode end."""
        if not self._started:
            raise RuntimeError("call reset() before the first step()")
        if not 0 <= action < self.num_actions:
            raise ValueError(f"action must be in [0, {self.num_actions}), got {action}")
        reward = self._act(action)
        self._game_steps += 1
        game_over = self.ale.game_over()
        lives = self.ale.lives()
        life_lost = lives < self._lives
        if life_lost and not game_over and self._has_fire:
            reward += self._act(_FIRE)
            game_over = self.ale.game_over()
            lives = self.ale.lives()
        self._lives = lives
        # Some games (Qbert) show 0 lives for a few frames before the game over; only the game over
        # ends that last life, so it counts once.
        terminated = game_over or (self.training and life_lost and lives > 0)
        truncated = self._game_steps >= self._max_episode_steps
        if game_over or truncated:
            obs = self._reset_game()
        elif terminated:
            obs = self._restart_stack()
        else:
            self._stack[:-1] = self._stack[1:]
            self._stack[-1] = self._pooled_frame()
            obs = self._stack.copy()
        return Step(
            obs=obs,
            reward=np.float32(reward),
            terminated=terminated,
            truncated=truncated,
            is_first=terminated or truncated,
            new_game=game_over or truncated,
        )

    def get_state(self) -> EnvState:
        """Returns a snapshot from which `set_state` continues with identical steps."""
        return EnvState(
            game=self.game,
            settings=dict(self._settings),
            ale=self.ale.cloneState(include_rng=True).serialize(),
            stack=self._stack.copy(),
            lives=self._lives,
            game_steps=self._game_steps,
            started=self._started,
            rng=self._rng.bit_generator.state,
        )

    def set_state(self, state: EnvState) -> None:
        """Restores a snapshot of an env of the same game and settings (seeds may differ).

        Raises:
            ValueError: if `state` comes from another game or other settings.
        """
        if state.game != self.game:
            raise ValueError(f"env state is from game {state.game}, this env plays {self.game}")
        if state.settings != self._settings:
            raise ValueError(
                f"env state has settings {state.settings}, this env has {self._settings}"
            )
        self.ale.restoreState(ale_py.ALEState(state.ale))
        self._stack[:] = state.stack
        self._lives = state.lives
        self._game_steps = state.game_steps
        self._started = state.started
        self._rng.bit_generator.state = state.rng

    def close(self) -> None:
        self._ale_env.close()

    def _act(self, action: int) -> float:
        """Repeats `action` for frame_skip frames, keeping the last two screens; stops at game over.

        After a game over the screens are stale, which is harmless: a real reset follows.
        """
        ale_action = self._action_set[action]
        reward = 0.0
        first_kept = self._frame_skip - 2
        for t in range(self._frame_skip):
            reward += self.ale.act(ale_action)
            if self.ale.game_over():
                break
            if t >= first_kept:
                self.ale.getScreenGrayscale(self._screens[t - first_kept])
        return reward

    def _pooled_frame(self) -> np.ndarray:
        return pool_frames(self._screens[0], self._screens[1], self._frame_size)

    def _restart_stack(self) -> np.ndarray:
        self._stack[:] = self._pooled_frame()
        return self._stack.copy()

    def _reset_game(self) -> np.ndarray:
        """Starts a new game (no-op frames, then FIRE and action 2) and returns its observation."""
        while not self._start_game():
            pass
        self._game_steps = 0
        self._lives = self.ale.lives()
        return self._restart_stack()

    def _start_game(self) -> bool:
        """Resets the emulator and plays the start of a game; False if the game ended meanwhile."""
        self.ale.reset_game()
        # The screens hold the last two frames; with fewer than two acted, the reset screen is both.
        self.ale.getScreenGrayscale(self._screens[1])
        self._screens[0] = self._screens[1]
        num_noops = int(self._rng.integers(1, self._noop_max + 1)) if self._noop_max > 0 else 0
        noop = self._action_set[_NOOP]
        for i in range(num_noops):
            self.ale.act(noop)
            if self.ale.game_over():
                return False
            if i >= num_noops - 2:
                self._screens[0] = self._screens[1]
                self.ale.getScreenGrayscale(self._screens[1])
        # FIRE comes after the no-ops: a ball launched earlier could be lost while they run.
        if self._has_fire:
            for action in (_FIRE, 2):
                self._act(action)
                if self.ale.game_over():
                    return False
        return True


def make(
    game: str,
    *,
    seed: int,
    training: bool,
    noop_max: int = 30,
    max_episode_steps: int = 27_000,
    frame_skip: int = 4,
    frame_stack: int = 4,
    frame_size: int = 64,
) -> AtariEnv:
    """Builds one environment; call `reset()` before stepping.

    Args:
        game: one of GAMES, e.g. "Pong".
        seed: seeds the emulator and the no-op counts; equal seeds and actions give equal steps.
        training: training mode (no-ops at resets, life loss terminates) or evaluation mode.
        noop_max: training resets take 1..noop_max random no-op emulator frames; 0 disables them.
        max_episode_steps: agent steps per game before truncation.
        frame_skip: emulator frames per agent step (>= 2: the last two are max-pooled).
        frame_stack: frames per observation.
        frame_size: height and width of the frames.

    Raises:
        ValueError: for an unknown game or out-of-range settings.
    """
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; the Atari 100k games are {', '.join(GAMES)}")
    if frame_skip < 2:
        raise ValueError(
            f"frame_skip must be >= 2 (the last two frames are pooled), got {frame_skip}"
        )
    if noop_max < 0 or max_episode_steps < 1 or frame_stack < 1 or frame_size < 1:
        raise ValueError(
            "need noop_max >= 0 and max_episode_steps, frame_stack, frame_size >= 1, got "
            f"{noop_max}, {max_episode_steps}, {frame_stack}, {frame_size}"
        )
    gym.register_envs(ale_py)
    ale_env = gym.make(
        f"ALE/{game}-v5",
        frameskip=1,
        repeat_action_probability=0.0,
        full_action_space=False,
        obs_type="grayscale",
        # 0 = no emulator frame limit: the time limit is max_episode_steps alone.
        max_num_frames_per_episode=0,
    )
    ale_env.reset(seed=seed)
    return AtariEnv(
        ale_env,
        game=game,
        seed=seed,
        training=training,
        noop_max=noop_max,
        max_episode_steps=max_episode_steps,
        frame_skip=frame_skip,
        frame_stack=frame_stack,
        frame_size=frame_size,
    )


def env_kwargs(config: config_lib.Config) -> dict:
    """The `make` settings of a `config.Config` (game and preprocessing; seed and mode apart)."""
    return dict(
        noop_max=config.noop_max,
        max_episode_steps=config.max_episode_steps,
        frame_skip=config.frame_skip,
        frame_stack=config.frame_stack,
        frame_size=config.frame_size,
    )


def from_config(config: config_lib.Config, *, training: bool, seed: int) -> AtariEnv:
    """Builds the environment of a `config.Config`."""
    return make(config.game, seed=seed, training=training, **env_kwargs(config))

"""Loads the recorded Atari sequences in testdata/ (written by testdata/record.py).

Each file `testdata/<game>.npz` holds one training-mode recording of T agent steps:

    frames      [T, 64, 64] uint8  newest frame of observation o_i (stacks are rebuilt from these)
    actions     [T] int32          a_i, taken at o_i
    rewards     [T] float32        raw game reward r_i for (o_i, a_i)
    terminated  [T] bool           the transition ended a life or the game (discount target 0)
    truncated   [T] bool           the time limit ended the episode
    is_first    [T] bool           o_i starts an episode (its stack repeats frames[i])
"""

import os
from typing import NamedTuple

import numpy as np

GAMES = ("Pong", "Breakout")
# The settings of each recording: replaying its actions in
# `envs.atari.make(game, training=True, **RECORD_SETTINGS[game])` reproduces its frames.
RECORD_SETTINGS = {
    "Pong": {"seed": 0, "max_episode_steps": 250},  # Lost points, a truncation and a real reset.
    "Breakout": {"seed": 0, "max_episode_steps": 27_000},  # Points, life losses and a game over.
}
_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "testdata")


class Recording(NamedTuple):
    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    is_first: np.ndarray


def path(game: str) -> str:
    return os.path.join(_DIR, f"{game.lower()}.npz")


def load(game: str = "Pong") -> Recording:
    """Returns the recording of `game` (one of GAMES)."""
    if game not in GAMES:
        raise ValueError(f"no testdata for game {game!r}; recorded games are {GAMES}")
    with np.load(path(game)) as data:
        return Recording(**{name: data[name] for name in Recording._fields})


def stack_indices(is_first: np.ndarray, stack: int = 4) -> np.ndarray:
    """[T, stack] indices of the frames of each step's observation, oldest first.

    Frames before an episode's first step repeat that first frame, as the environment pads.
    """
    num_steps = len(is_first)
    episode_start = np.maximum.accumulate(np.where(is_first, np.arange(num_steps), 0))
    offsets = np.arange(-stack + 1, 1)
    return np.maximum(np.arange(num_steps)[:, None] + offsets, episode_start[:, None])


def stacks(recording: Recording, stack: int = 4) -> np.ndarray:
    """Rebuilds the observations [T, stack, 64, 64] uint8 from single frames."""
    return recording.frames[stack_indices(recording.is_first, stack)]


def play_random(env, num_steps: int, seed: int) -> Recording:
    """Plays `num_steps` uniformly random actions (drawn from `seed`) in a training-mode
    envs.atari.AtariEnv from its reset; returns them with what the env produced."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((num_steps, 64, 64), np.uint8)
    actions = rng.integers(env.num_actions, size=num_steps).astype(np.int32)
    rewards = np.zeros(num_steps, np.float32)
    terminated = np.zeros(num_steps, bool)
    truncated = np.zeros(num_steps, bool)
    is_first = np.zeros(num_steps, bool)
    obs, is_first[0] = env.reset(), True
    for i in range(num_steps):
        frames[i] = obs[-1]
        step = env.step(int(actions[i]))
        rewards[i], terminated[i], truncated[i] = step.reward, step.terminated, step.truncated
        if i + 1 < num_steps:
            is_first[i + 1] = step.is_first
        obs = step.obs
    return Recording(frames, actions, rewards, terminated, truncated, is_first)


def add_to(buffer, recording: Recording) -> None:
    """Appends every step of `recording` to a replay.ReplayBuffer."""
    buffer.add_batch(
        obs_or_frames=recording.frames,
        actions=recording.actions,
        rewards=recording.rewards,
        terminated=recording.terminated,
        truncated=recording.truncated,
        is_first=recording.is_first,
    )

"""Evaluation protocol of the paper and human-normalized scores.

Evaluation games use the env's evaluation mode (no no-ops, an episode is a whole game); actions are
sampled from the policy on the mode of z (docs/spec.md, "Environment"), EVAL_BATCH games at a time
with one batched policy call per step. Scores are raw game scores.
"""

import json
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from twm_tf import acting
from twm_tf import config as config_lib
from twm_tf import faults
from twm_tf import files
from twm_tf import games
from twm_tf import seeding
from twm_tf.envs import atari
from twm_tf.run import restore
from twm_tf.run import run_dir as run_dir_lib


class Result(NamedTuple):
    scores: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


# Games played at once: one batched policy call per step instead of one call per game and step.
EVAL_BATCH = 16


def evaluate(
    logits_fn: acting.Logits,
    config: config_lib.Config,
    episodes: int,
    seed: int,
    on_game: Callable[[], None] | None = None,
) -> Result:
    """Plays `episodes` whole games, up to EVAL_BATCH at a time.

    Args:
      logits_fn: the policy, uint8 observations [B, stack, 64, 64] -> action logits [B, A].
      config: env settings (game, time limit, frame settings).
      episodes: number of games.
      seed: game i's env and action sampling get streams of their own derived from (seed, i)
        (`seeding`), so a game's result does not depend on which games share its batch (without
        no-ops or sticky actions the ALE itself is deterministic; the variety comes from the
        sampled actions, drawn per game by Gumbel-max from its own NumPy generator).
      on_game: called after each finished game (progress display).

    Returns:
      The raw score and length of every game, in game order.
    """
    scores, lengths = [0.0] * episodes, [0] * episodes
    slots = []  # [game index, env, action generator, observation]
    next_game = 0

    def start_game():
        nonlocal next_game
        i, next_game = next_game, next_game + 1
        env = atari.from_config(config, training=False, seed=seeding.derive(seed, "eval_env", i))
        slots.append([i, env, seeding.numpy_rng(seed, "eval_actions", i), env.reset()])

    while next_game < min(episodes, EVAL_BATCH):
        start_game()
    while slots:
        logits = np.asarray(logits_fn(np.stack([slot[3] for slot in slots])), np.float64)
        finished = []
        for slot, row in zip(slots, logits):
            i, env, rng, _ = slot
            step = env.step(sample(row, rng))
            scores[i] += float(step.reward)
            lengths[i] += 1
            slot[3] = step.obs
            if step.new_game:
                env.close()
                finished.append(slot)
                faults.point("eval_game")
                if on_game is not None:
                    on_game()
        for slot in finished:
            slots.remove(slot)
            if next_game < episodes:
                start_game()
    return Result(scores, lengths)


def sample(logits: np.ndarray, rng: np.random.Generator) -> int:
    """Draws an action from softmax(logits [A]) by Gumbel-max."""
    return int(np.argmax(logits + rng.gumbel(size=logits.shape)))


def random_policy(num_actions: int) -> acting.Logits:
    """A uniformly random policy: equal logits for every action."""

    def logits_fn(frames):
        return np.zeros([len(frames), num_actions], np.float32)

    return logits_fn


def evaluate_final(
    logits_fn: acting.Logits,
    config: config_lib.Config,
    episodes: int,
    seed: int,
    path: str,
    on_game: Callable[[], None] | None = None,
) -> dict:
    """The final evaluation: the policy and, with the same games and seeds, a random policy.

    Writes the summary (see `write`) to `path` and returns it.
    """
    result = evaluate(logits_fn, config, episodes, seed, on_game)
    num_actions = atari.from_config(config, training=False, seed=seed).num_actions
    baseline = evaluate(random_policy(num_actions), config, episodes, seed)
    return write(result, config, path, random_result=baseline)


def evaluate_run(run_dir: str, episodes: int | None = None, seed: int | None = None) -> dict:
    """Evaluates the latest checkpoint of a run; writes and returns <run_dir>/eval.json.

    The models are rebuilt in the run's precision, so with the default seed this replays the
    games of the run's own final evaluation.

    Args:
      run_dir: a launch/train.py run directory.
      episodes: games to play (default: the run's config.eval_episodes).
      seed: evaluation seed (default: the run's seed + env_steps, as the agent's final one).
    """
    run = restore.load_run(run_dir, world_model=False, as_trained=True)
    config = run.config
    seed = config.seed + config.env_steps if seed is None else seed
    return evaluate_final(
        acting.policy_logits(run.obs_model, run.actor),
        config,
        config.eval_episodes if episodes is None else episodes,
        seed,
        run_dir_lib.path(run_dir, run_dir_lib.EVAL),
    )


def write(
    result: Result, config: config_lib.Config, path: str, random_result: Result | None = None
) -> dict:
    """Writes eval.json atomically and returns its contents.

    Keys: game, episodes, scores and lengths (per game), mean, std, human_normalized, and with
    `random_result` random_mean and random_scores (a uniformly random policy, same protocol).
    """
    summary = {
        "game": config.game,
        "episodes": len(result.scores),
        "scores": result.scores,
        "lengths": result.lengths,
        "mean": result.mean,
        "std": float(np.std(result.scores)),
        "human_normalized": games.human_normalized(config.game, result.mean),
    }
    if random_result is not None:
        summary["random_mean"] = random_result.mean
        summary["random_scores"] = random_result.scores
    with files.atomic_write(path) as f:
        json.dump(summary, f, indent=2)
    return summary

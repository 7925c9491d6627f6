"""The layout of a training run directory, and the small files the loop writes into it.

    <run_dir>/
      config.json     the resolved Config; a resumed run must match it (`check_config`)
      checkpoints/    ckpt-N.* and replay-N.npz, the two newest (twm_tf.checkpoint)
      episodes.csv    env_steps, episode, return: one row per finished training game
      evals.csv       env_steps, mean, std, human_normalized, episodes: interim evaluations
      eval.json       the final evaluation (twm_tf.evaluation.write)
      tensorboard/    summaries
      policy/         the exported SavedModel (launch/export_policy.py)
      analysis/       launch/world_model_eval.py and launch/imagine.py outputs
      lock            held by the training process (twm_tf.run_lock)

Every reader and writer of a run directory takes its paths from here.
"""

import csv
import dataclasses
import os

import numpy as np

from twm_tf import config as config_lib
from twm_tf import files

CONFIG = config_lib.FILE_NAME
CHECKPOINTS = "checkpoints"
EPISODES = "episodes.csv"
EVALS = "evals.csv"
EVAL = "eval.json"
TENSORBOARD = "tensorboard"
POLICY = "policy"
ANALYSIS = "analysis"

# Fields a resumed run may change: they do not touch the training state.
RESUMABLE_CHANGES = frozenset(
    {
        "eval_every",
        "eval_episodes",
        "eval_episodes_interim",
        "log_every",
        "checkpoint_every",
        "replicas",
    }
)


class RunDirError(ValueError):
    """The run directory holds a run that this config cannot resume."""


def path(run_dir: str, name: str) -> str:
    """`run_dir`/`name` for one of the layout's names above."""
    return os.path.join(run_dir, name)


def check_config(run_dir: str, config: config_lib.Config) -> None:
    """Refuses a run directory that holds a run of another config (its checkpoint would not fit).

    A missing directory is created; one without config.json is a new run.

    Raises:
      RunDirError: naming each differing field, old -> new.
    """
    config_path = path(run_dir, CONFIG)
    if not os.path.exists(config_path):
        os.makedirs(run_dir, exist_ok=True)
        return
    saved = dataclasses.asdict(config_lib.load(config_path))
    given = dataclasses.asdict(config)
    changed = [
        f"{name}: {saved[name]!r} -> {given[name]!r}"
        for name in saved
        if saved[name] != given[name] and name not in RESUMABLE_CHANGES
    ]
    if changed:
        raise RunDirError(
            f"{run_dir} holds a run with another config ({'; '.join(changed)}); "
            "resume it with its own flags or pick a new --run_dir"
        )


def _read_rows(csv_path: str) -> list[list[str]]:
    if not os.path.exists(csv_path):
        return []
    with open(csv_path, newline="") as f:
        return list(csv.reader(f))


def append_episode(run_dir: str, env_steps: int, episode: int, episode_return: float) -> None:
    """Appends one finished training game to episodes.csv."""
    with open(path(run_dir, EPISODES), "a", newline="") as f:
        csv.writer(f).writerow([env_steps, episode, episode_return])


def truncate_episodes(run_dir: str, episodes: int) -> None:
    """Keeps the first `episodes` games of episodes.csv: a resumed run logs the later ones again."""
    episodes_path = path(run_dir, EPISODES)
    if not os.path.exists(episodes_path):
        return
    rows = [row for row in _read_rows(episodes_path) if int(row[1]) <= episodes]
    with files.atomic_write(episodes_path, newline="") as f:
        csv.writer(f).writerows(rows)


def log_evaluation(
    run_dir: str, env_steps: int, scores: list[float], human_normalized: float
) -> None:
    """Appends an interim evaluation to evals.csv (env_steps, mean, std, normalized, episodes).

    Rows at or after `env_steps` come from a run that was resumed from an earlier checkpoint and
    are replaced, so the file holds each evaluation once.
    """
    evals_path = path(run_dir, EVALS)
    rows = [row for row in _read_rows(evals_path) if int(row[0]) < env_steps]
    rows.append(
        [env_steps, float(np.mean(scores)), float(np.std(scores)), human_normalized, len(scores)]
    )
    with files.atomic_write(evals_path, newline="") as f:
        csv.writer(f).writerows(rows)

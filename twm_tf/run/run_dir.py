"""The layout of a training run directory, and the small files the loop writes into it.

    <run_dir>/
      config.json     the resolved Config; a resumed run must match it (`check_config`)
      checkpoints/    ckpt-N.* and replay-N.bin, the two newest (twm_tf.run.checkpoint)
      episodes.csv    env_steps, episode, return: one row per finished training game
      evals.csv       env_steps, mean, std, human_normalized, episodes: interim evaluations
      eval.json       the final evaluation (twm_tf.evaluation.protocol.write)
      tensorboard/    summaries
      policy/         the exported SavedModel and policy.tflite (launch/export_policy.py)
      analysis/       launch/world_model_eval.py output (launch/imagine.py writes to --out)
      .lock           held by the training process (twm_tf.run.run_lock)

Every reader and writer of a run directory takes its paths from here.
"""

import csv
import dataclasses
import os

import numpy as np

from twm_tf import config as config_lib
from twm_tf import errors
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


class RunDirError(errors.RunError, ValueError):
    """The run directory holds a run that this config cannot resume."""


def path(run_dir: str, name: str) -> str:
    """`run_dir`/`name` for one of the layout's names above."""
    return os.path.join(run_dir, name)


def check_config(run_dir: str, config: config_lib.Config) -> None:
    """Refuses a run directory that holds a run of another config (its checkpoint would not fit).

    A missing directory is created; one without config.json is a new run.

    Raises:
      RunDirError: naming each differing field, old -> new; or run_dir is a file or cannot be
        created.
      files.FileError: config.json cannot be read or is not a valid config (left as it is).
    """
    config_path = path(run_dir, CONFIG)
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise RunDirError(f"--run_dir={run_dir} is a file, not a directory")
    if not os.path.lexists(config_path):
        try:
            os.makedirs(run_dir, exist_ok=True)
        except OSError as error:
            raise RunDirError(
                f"--run_dir={run_dir} cannot be created: {files.reason(error)}"
            ) from None
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


# The columns of episodes.csv and evals.csv, as files.read_csv checks them.
EPISODES_COLUMNS = (("env_steps", int), ("episode", int), ("return", float))
EVALS_COLUMNS = (
    ("env_steps", int),
    ("mean", float),
    ("std", float),
    ("human_normalized", float),
    ("episodes", int),
)


def read_episodes(run_dir: str) -> list[tuple[int, int, float]]:
    """episodes.csv's rows (none if it is missing); FileError names a malformed line.

    The file is appended to, so a last line cut short by a kill or still being written is left
    out.
    """
    return files.read_csv(
        path(run_dir, EPISODES), "the run's episode log", EPISODES_COLUMNS, appended=True
    )


def read_evals(run_dir: str) -> list[tuple[int, float, float, float, int]]:
    """evals.csv's rows (none if it is missing); FileError names a malformed line."""
    return files.read_csv(path(run_dir, EVALS), "the run's evaluation log", EVALS_COLUMNS)


def append_episode(run_dir: str, env_steps: int, episode: int, episode_return: float) -> None:
    """Appends one finished training game to episodes.csv."""
    with open(path(run_dir, EPISODES), "a", newline="") as f:
        csv.writer(f).writerow([env_steps, episode, episode_return])


def truncate_episodes(run_dir: str, episodes: int) -> None:
    """Keeps the first `episodes` games of episodes.csv: a resumed run logs the later ones again."""
    episodes_path = path(run_dir, EPISODES)
    if not os.path.exists(episodes_path):
        return
    rows = [row for row in read_episodes(run_dir) if row[1] <= episodes]
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
    rows = [list(row) for row in read_evals(run_dir) if row[0] < env_steps]
    rows.append(
        [env_steps, float(np.mean(scores)), float(np.std(scores)), human_normalized, len(scores)]
    )
    with files.atomic_write(evals_path, newline="") as f:
        csv.writer(f).writerows(rows)

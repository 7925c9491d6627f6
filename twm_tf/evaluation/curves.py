"""Learning curves of one run directory: training-episode returns and evaluations by env step.

Reads what `trainer.Trainer` writes: episodes.csv (env_steps, episode, return), evals.csv
(env_steps, mean, std, human_normalized, episodes) and eval.json (the final evaluation with the
random policy's scores under the same protocol).
"""

import os
from typing import NamedTuple

import numpy as np

from twm_tf import files
from twm_tf.run import run_dir as run_dir_lib


class Curves(NamedTuple):
    episode_steps: np.ndarray  # [E] env step at which each training episode ended.
    episode_returns: np.ndarray  # [E] its return (a whole game, raw score).
    eval_steps: np.ndarray  # [K] env steps of the evaluations, the final one last if present.
    eval_means: np.ndarray  # [K] mean score of each evaluation.
    eval_stds: np.ndarray  # [K] its standard deviation over games.
    random_mean: float | None  # The random policy's mean in the final evaluation.


def load(run_dir: str) -> Curves:
    """Reads a run directory's curves; a run without any episode yet is an error.

    Raises:
      ValueError: run_dir is not a run directory or has no finished episode yet.
      files.FileError: naming a file of the run that cannot be read or is malformed.
    """
    config_path = run_dir_lib.path(run_dir, run_dir_lib.CONFIG)
    if not os.path.exists(config_path):
        raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    env_steps = files.read_json(config_path, "the run's config", {"env_steps": int})["env_steps"]
    episodes = run_dir_lib.read_episodes(run_dir)
    if not episodes:
        raise ValueError(f"{run_dir} has no finished training episode yet (episodes.csv)")
    evals = [row[:3] for row in run_dir_lib.read_evals(run_dir)]
    random_mean = None
    final_path = run_dir_lib.path(run_dir, run_dir_lib.EVAL)
    if os.path.exists(final_path):
        final = files.read_json(
            final_path,
            "the run's final evaluation",
            {"mean": float, "std": float},
            optional={"random_mean": float},
        )
        evals.append((env_steps, final["mean"], final["std"]))
        random_mean = final.get("random_mean")
    steps, means, stds = np.array(evals, dtype=float).reshape(-1, 3).T
    return Curves(
        episode_steps=np.array([row[0] for row in episodes]),
        episode_returns=np.array([row[2] for row in episodes], dtype=float),
        eval_steps=steps,
        eval_means=means,
        eval_stds=stds,
        random_mean=random_mean,
    )


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start)."""
    sums = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot(curves: Curves, title: str, path: str, window: int = 10) -> None:
    """Writes a PNG: episode returns (raw and smoothed), evaluations +- std, the random mean."""
    import matplotlib  # Imported here: only plotting needs it.

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(curves.episode_steps, curves.episode_returns, ".", color="tab:blue", alpha=0.3, ms=3)
    ax.plot(
        curves.episode_steps,
        smooth(curves.episode_returns, window),
        color="tab:blue",
        label=f"training episodes (mean of {window})",
    )
    if len(curves.eval_steps):
        ax.errorbar(
            curves.eval_steps,
            curves.eval_means,
            yerr=curves.eval_stds,
            color="tab:orange",
            marker="o",
            capsize=3,
            label="evaluation (mean +- std over games)",
        )
    if curves.random_mean is not None:
        ax.axhline(curves.random_mean, color="gray", ls="--", label="random policy")
    ax.set_xlabel("env steps")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": files.PNG_SOFTWARE})
    plt.close(fig)

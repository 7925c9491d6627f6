"""Atari 100k report: per-game scores, human-normalized aggregates with bootstrap CIs, plots.

The aggregates follow Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice",
rliable): per-game human-normalized scores x = (score - random) / (human - random); mean and median
over games of the per-game mean over runs; IQM, the 25 % trimmed mean over all runs x games; the
optimality gap, the mean over runs x games of max(1 - x, 0); the probability of improvement
P(X > Y) + P(X = Y) / 2 per game, averaged over games. 95 % confidence intervals come from a
stratified bootstrap over runs: each game's runs are one sample of a multi-sample
`scipy.stats.bootstrap`, which resamples every sample independently (percentile method).

`build` gathers everything into one JSON-able dict (report.json); `report_output.write` renders
it to report.md and PNGs without further input.
"""

import csv
import glob
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from absl import logging
from scipy import stats

from twm_tf import files
from twm_tf import games
from twm_tf.run import run_dir as run_dir_lib

GAMES = tuple(sorted(games.reference_scores()))  # The 26 Atari 100k games.
EXPECTED_RUNS = 5  # Runs per game in the published results.
CONFIDENCE = 0.95
_PUBLISHED = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, "reference", "atari100k_runs.csv"
)
_IGNORED_FIELDS = ("game", "seed")  # Config fields that vary within one grid of runs.

Scores = dict[str, np.ndarray]  # game -> human-normalized final scores of its runs [R_game].


class Run(NamedTuple):
    run_dir: str
    config: dict  # The run's config.json.
    final: float | None  # Mean raw score of the final evaluation (eval.json); None if unfinished.
    eval_steps: np.ndarray  # [K] env steps of the evaluations, the final one last if present.
    eval_means: np.ndarray  # [K] their mean raw scores.

    @property
    def game(self) -> str:
        return self.config["game"]


class Estimate(NamedTuple):
    value: float
    ci: tuple[float, float] | None  # None when no game has two runs to resample.


def load_runs(pattern: str, flag: str = "runs") -> list[Run]:
    """Reads every run directory (one with config.json) matched by the glob `pattern`.

    Raises:
      ValueError: naming `--<flag>` if the pattern matches no run directory.
      files.FileError: naming a run's file that cannot be read or is malformed.
    """
    runs = []
    for run_dir in sorted(glob.glob(pattern)):
        config_path = run_dir_lib.path(run_dir, run_dir_lib.CONFIG)
        if not os.path.isfile(config_path):
            continue
        config = files.read_json(
            config_path, "the run's config", {"game": str, "env_steps": int, "seed": int}
        )
        if config["game"] not in GAMES:
            raise files.FileError(
                f"the run's config {config_path}: game must be one of the 26 Atari 100k games, "
                f"got {config['game']!r}"
            )
        evals = [(row[0], row[1]) for row in run_dir_lib.read_evals(run_dir)]
        final = None
        if os.path.exists(run_dir_lib.path(run_dir, run_dir_lib.EVAL)):
            final = files.read_json(
                run_dir_lib.path(run_dir, run_dir_lib.EVAL),
                "the run's final evaluation",
                {"mean": float},
            )["mean"]
            evals.append((config["env_steps"], final))
        steps, means = (np.array(c, float) for c in zip(*evals)) if evals else (np.zeros(0),) * 2
        runs.append(Run(run_dir, config, final, steps, means))
    if not runs:
        raise ValueError(f"--{flag}={pattern} matches no run directory (one with config.json)")
    return runs


def published_scores() -> dict[str, dict[str, np.ndarray]]:
    """Per-run raw final scores of the published agents: agent -> game -> [runs]."""
    table: dict[str, dict[str, list[float]]] = {}
    with open(_PUBLISHED) as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            table.setdefault(row["agent"], {}).setdefault(row["game"], []).append(
                float(row["score"])
            )
    return {agent: {g: np.array(v) for g, v in games.items()} for agent, games in table.items()}


def normalize(raw: dict[str, Sequence[float]]) -> Scores:
    """Human-normalizes per-game raw scores."""
    return {g: np.array([games.human_normalized(g, s) for s in v]) for g, v in raw.items()}


# Statistics over per-game samples [..., R_game] (a leading batch dimension while bootstrapping).
def _game_means(samples):
    return np.stack([s.mean(-1) for s in samples], -1)


def _mean(samples):
    return _game_means(samples).mean(-1)


def _median(samples):
    return np.median(_game_means(samples), -1)


def _iqm(samples):
    return stats.trim_mean(np.concatenate(samples, -1), 0.25, axis=-1)


def _optimality_gap(samples, gamma=1.0):
    return np.maximum(gamma - np.concatenate(samples, -1), 0.0).mean(-1)


AGGREGATES: dict[str, Callable] = {
    "mean": _mean,
    "median": _median,
    "iqm": _iqm,
    "optimality_gap": _optimality_gap,
}


def stratified_bootstrap(
    samples: Sequence[np.ndarray], statistic: Callable, *, resamples: int, seed: int
) -> Estimate:
    """The statistic of per-game samples with a percentile CI resampling each sample's runs.

    A sample of one run resamples to itself, so it is held fixed (scipy needs two per sample).
    """
    samples = [np.asarray(s, float) for s in samples]
    value = float(statistic(samples))
    varying = [i for i, s in enumerate(samples) if len(s) > 1]
    if not varying:
        return Estimate(value, None)

    def combined(*drawn, axis):
        del axis  # Always -1: drawn samples are [..., R_game].
        full = list(samples)
        for i, sample in zip(varying, drawn):
            full[i] = sample
        batch = drawn[0].shape[:-1]
        return statistic([np.broadcast_to(s, batch + s.shape[-1:]) for s in full])

    result = stats.bootstrap(
        tuple(samples[i] for i in varying),
        combined,
        n_resamples=resamples,
        vectorized=True,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=seed,
    )
    interval = result.confidence_interval
    return Estimate(value, (float(interval.low), float(interval.high)))


def aggregate(scores: Scores, *, resamples: int = 10_000, seed: int = 0) -> dict[str, Estimate]:
    """Mean, median, IQM and optimality gap of human-normalized scores, each with its CI."""
    samples = [scores[g] for g in sorted(scores)]
    return {
        name: stratified_bootstrap(samples, fn, resamples=resamples, seed=seed)
        for name, fn in AGGREGATES.items()
    }


def _improvement(x, y):
    """P(X > Y) + P(X = Y) / 2 of two samples [..., n] and [..., m] (Mann-Whitney U / nm)."""
    diff = x[..., :, None] - y[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean((-2, -1))


def probability_of_improvement(
    x: Scores, y: Scores, *, resamples: int = 10_000, seed: int = 0
) -> tuple[Estimate, dict[str, float]]:
    """P(X > Y) averaged over the games both have, with its CI; and the per-game values."""
    games = sorted(set(x) & set(y))
    if not games:
        raise ValueError("no game in common to compare")
    samples = [s for g in games for s in (x[g], y[g])]

    def statistic(samples):
        pairs = zip(samples[::2], samples[1::2])
        return np.stack([_improvement(a, b) for a, b in pairs], -1).mean(-1)

    per_game = {g: float(_improvement(np.asarray(x[g]), np.asarray(y[g]))) for g in games}
    return stratified_bootstrap(samples, statistic, resamples=resamples, seed=seed), per_game


def curves(runs: Sequence[Run]) -> dict[str, dict]:
    """Human-normalized evaluation curves per game: every run's and their mean at each step."""
    out = {}
    for game in sorted({r.game for r in runs}):
        game_runs = [r for r in runs if r.game == game and len(r.eval_steps)]
        if not game_runs:
            continue
        lines = [
            (r.eval_steps.tolist(), normalize({game: r.eval_means})[game].tolist())
            for r in game_runs
        ]
        steps = sorted({s for line_steps, _ in lines for s in line_steps})
        mean = [
            float(np.mean([v[line_steps.index(s)] for line_steps, v in lines if s in line_steps]))
            for s in steps
        ]
        out[game] = {
            "steps": steps,
            "mean": mean,
            "runs": [{"steps": s, "values": v} for s, v in lines],
        }
    return out


def config_difference(default: Sequence[Run], variant: Sequence[Run]) -> dict[str, list[str]]:
    """Config fields whose values differ between two groups of runs: field -> [default, variant]."""
    keys = sorted({k for r in [*default, *variant] for k in r.config} - set(_IGNORED_FIELDS))

    def values(runs, key):  # As a command-line override would spell them: inf, false.
        return ", ".join(sorted({str(r.config.get(key)).lower() for r in runs}))

    return {
        k: [values(default, k), values(variant, k)]
        for k in keys
        if values(default, k) != values(variant, k)
    }


def _finals(runs: Sequence[Run]) -> dict[str, list[float]]:
    raw: dict[str, list[float]] = {}
    for run in runs:
        if run.final is not None:
            raw.setdefault(run.game, []).append(run.final)
    return raw


def _estimates(estimates: dict[str, Estimate]) -> dict[str, dict]:
    return {k: {"value": e.value, "ci": e.ci} for k, e in estimates.items()}


def build(
    *,
    runs: Sequence[Run] | None = None,
    published: str | None = None,
    compare: str = "TWM",
    variant: Sequence[Run] | None = None,
    source: str = "",
    resamples: int = 10_000,
    seed: int = 0,
    expected_runs: int = EXPECTED_RUNS,
) -> dict:
    """Everything of the report as a JSON-able dict (report.json).

    Args:
      runs: the runs to report (`load_runs`); or
      published: the name of a published agent to report instead.
      compare: the published agent for the probability of improvement and performance profile.
      variant: an ablation's runs, compared with `runs` on the games both have.
      source: how the runs were selected (the glob), shown in the report.
      resamples: bootstrap resamples per confidence interval.
      seed: the bootstrap's random state.
      expected_runs: runs per game of a full grid.

    Raises:
      ValueError: on a bad combination of arguments or when no run has finished.
    """
    table = published_scores()
    runs, raw, subject = _subject(table, runs, published, compare, variant, source)
    scores = normalize(raw)
    games = sorted(scores)
    kwargs = dict(resamples=resamples, seed=seed)
    report = {
        "subject": subject,
        "source": source or f"published {published}",
        **_coverage(scores, runs, expected_runs),
        "per_game": _per_game(raw, scores, table),
        "aggregates": _estimates(aggregate(scores, **kwargs)),
        "published_aggregates": {
            a: _estimates(aggregate(normalize({g: table[a][g] for g in games}), **kwargs))
            for a in table
        },
        "published_runs": {a: sum(len(table[a][g]) for g in games) for a in table},
        "bootstrap": {
            "method": "percentile, stratified over runs per game",
            "confidence": CONFIDENCE,
            "resamples": resamples,
            "seed": seed,
        },
        "curves": curves(runs),
        "variant": None,
    }
    report["compare"] = _comparison(scores, table, compare, kwargs)
    if variant:
        report["variant"] = _variant(runs, variant, scores, kwargs)
    total = sum(report["runs_per_game"].values())
    logging.info("report of %s: %d games, %d runs", report["source"], len(games), total)
    return report


def _subject(table, runs, published, compare, variant, source) -> tuple[list, dict, str]:
    """Checks `build`'s arguments; returns its runs, the raw final scores by game, the subject."""
    for name in (published, compare):
        if name is not None and name not in table:
            raise ValueError(f"unknown published agent {name!r}; known: {sorted(table)}")
    if (runs is None) == (published is None):
        raise ValueError("report either runs or a published agent")
    if published is not None:
        runs, raw, subject = [], dict(table[published]), published
        if variant:
            raise ValueError("a variant is compared with runs, not with a published agent")
    else:
        raw, subject = _finals(runs), "twm-tf"
        if not raw:
            raise ValueError(
                f"no run of {source or 'the runs'} has a final evaluation yet (eval.json)"
            )
    return runs, raw, subject


def _coverage(scores: Scores, runs: Sequence[Run], expected_runs: int) -> dict:
    """Which games and runs the report covers and which are missing or unfinished."""
    games = sorted(scores)
    return {
        "games": games,
        "missing_games": [g for g in GAMES if g not in scores],
        "runs_per_game": {g: len(scores[g]) for g in games},
        "expected_runs_per_game": expected_runs,
        "missing_runs": sum(max(expected_runs - len(scores.get(g, ())), 0) for g in GAMES),
        "unfinished_runs": [r.run_dir for r in runs if r.final is None],
    }


def _per_game(raw: dict[str, Sequence[float]], scores: Scores, table: dict) -> dict[str, dict]:
    """Each game's raw and normalized scores, its reference scores and the published means."""
    references = games.reference_scores()
    return {
        g: {
            "scores": [float(s) for s in raw[g]],
            "mean": float(np.mean(raw[g])),
            "normalized": scores[g].tolist(),
            "normalized_mean": float(scores[g].mean()),
            "random": references[g]["random"],
            "human": references[g]["human"],
            "published": {a: float(table[a][g].mean()) for a in table},
        }
        for g in sorted(scores)
    }


def _comparison(scores: Scores, table: dict, compare: str, kwargs: dict) -> dict:
    """The probability of improvement over the published agent `compare` on the same games."""
    compared = normalize({g: table[compare][g] for g in sorted(scores)})
    improvement, per_game = probability_of_improvement(scores, compared, **kwargs)
    return {
        "agent": compare,
        "probability_of_improvement": improvement._asdict(),
        "per_game": per_game,
        "normalized": {g: compared[g].tolist() for g in sorted(scores)},
    }


def _variant(runs: Sequence[Run], variant: Sequence[Run], scores: Scores, kwargs: dict) -> dict:
    """The variant's runs against `runs` on the finished games both have."""
    variant_scores = normalize(_finals(variant))
    common = sorted(set(variant_scores) & set(scores))
    if not common:
        raise ValueError("the variant runs share no finished game with the runs")
    default_scores = {g: scores[g] for g in common}
    variant_scores = {g: variant_scores[g] for g in common}
    differences = config_difference(
        [r for r in runs if r.game in common], [r for r in variant if r.game in common]
    )
    improvement, _ = probability_of_improvement(variant_scores, default_scores, **kwargs)
    return {
        "description": "; ".join(f"{k}={v[1]} (default {v[0]})" for k, v in differences.items())
        or "no config difference",
        "differences": differences,
        "games": common,
        "default": {g: default_scores[g].tolist() for g in common},
        "variant": {g: variant_scores[g].tolist() for g in common},
        "aggregates": {
            "default": _estimates(aggregate(default_scores, **kwargs)),
            "variant": _estimates(aggregate(variant_scores, **kwargs)),
        },
        "probability_of_improvement": improvement._asdict(),
        "unfinished_runs": [r.run_dir for r in variant if r.final is None],
    }

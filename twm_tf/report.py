"""Atari 100k report: per-game scores, human-normalized aggregates with bootstrap CIs, plots.

The aggregates follow Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice",
rliable): per-game human-normalized scores x = (score - random) / (human - random); mean and median
over games of the per-game mean over runs; IQM, the 25 % trimmed mean over all runs x games; the
optimality gap, the mean over runs x games of max(1 - x, 0); the probability of improvement
P(X > Y) + P(X = Y) / 2 per game, averaged over games. 95 % confidence intervals come from a
stratified bootstrap over runs: each game's runs are one sample of a multi-sample
`scipy.stats.bootstrap`, which resamples every sample independently (percentile method).

`build` gathers everything into one JSON-able dict (report.json); `write` renders it to report.md
and PNGs without further input.
"""

import csv
import glob
import json
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from absl import logging
from scipy import stats

from twm_tf import evaluation

GAMES = tuple(sorted(evaluation.reference_scores()))  # The 26 Atari 100k games.
EXPECTED_RUNS = 5  # Runs per game in the published results.
CONFIDENCE = 0.95
_PUBLISHED = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "reference", "atari100k_runs.csv"
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
    """
    runs = []
    for run_dir in sorted(glob.glob(pattern)):
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            continue
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        evals = []
        if os.path.exists(os.path.join(run_dir, "evals.csv")):
            with open(os.path.join(run_dir, "evals.csv"), newline="") as f:
                evals = [(int(row[0]), float(row[1])) for row in csv.reader(f) if row]
        final = None
        if os.path.exists(os.path.join(run_dir, "eval.json")):
            with open(os.path.join(run_dir, "eval.json")) as f:
                final = float(json.load(f)["mean"])
            evals.append((int(config["env_steps"]), final))
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
    return {g: np.array([evaluation.human_normalized(g, s) for s in v]) for g, v in raw.items()}


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
    scores = normalize(raw)
    games = sorted(scores)
    references = evaluation.reference_scores()
    kwargs = dict(resamples=resamples, seed=seed)
    report = {
        "subject": subject,
        "source": source or f"published {published}",
        "games": games,
        "missing_games": [g for g in GAMES if g not in scores],
        "runs_per_game": {g: len(scores[g]) for g in games},
        "expected_runs_per_game": expected_runs,
        "missing_runs": sum(max(expected_runs - len(scores.get(g, ())), 0) for g in GAMES),
        "unfinished_runs": [r.run_dir for r in runs if r.final is None],
        "per_game": {
            g: {
                "scores": [float(s) for s in raw[g]],
                "mean": float(np.mean(raw[g])),
                "normalized": scores[g].tolist(),
                "normalized_mean": float(scores[g].mean()),
                "random": references[g]["random"],
                "human": references[g]["human"],
                "published": {a: float(table[a][g].mean()) for a in table},
            }
            for g in games
        },
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
    compared = normalize({g: table[compare][g] for g in games})
    improvement, per_game = probability_of_improvement(scores, compared, **kwargs)
    report["compare"] = {
        "agent": compare,
        "probability_of_improvement": improvement._asdict(),
        "per_game": per_game,
        "normalized": {g: compared[g].tolist() for g in games},
    }
    if variant:
        variant_scores = normalize(_finals(variant))
        common = sorted(set(variant_scores) & set(scores))
        if not common:
            raise ValueError("the variant runs share no finished game with the runs")
        default_scores = {g: scores[g] for g in common}
        variant_scores = {g: variant_scores[g] for g in common}
        differences = config_difference(
            [r for r in runs if r.game in common], [r for r in variant if r.game in common]
        )
        improvement, per_game = probability_of_improvement(variant_scores, default_scores, **kwargs)
        report["variant"] = {
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
    logging.info(
        "report of %s: %d games, %d runs",
        report["source"],
        len(games),
        sum(report["runs_per_game"].values()),
    )
    return report


def _fmt(estimate: dict, digits: int = 3) -> str:
    text = f"{estimate['value']:.{digits}f}"
    if estimate["ci"] is not None:
        low, high = estimate["ci"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _aggregate_row(name: str, runs: int | str, estimates: dict) -> str:
    return f"| {name} | {runs} | " + " | ".join(_fmt(estimates[k]) for k in AGGREGATES) + " |"


def markdown(report: dict, images: Sequence[str] = ()) -> str:
    """report.md: coverage, aggregates, comparison, per-game table, variant, plots."""
    games, per_game = report["games"], report["per_game"]
    expected = report["expected_runs_per_game"]
    total = sum(report["runs_per_game"].values())
    lines = [
        f"# Atari 100k report: {report['source']}",
        "",
        f"{total} finished runs on {len(games)} of {len(GAMES)} games "
        f"({expected} runs per game expected).",
    ]
    if report["missing_games"]:
        lines.append(
            f"Missing games ({len(report['missing_games'])}): "
            + ", ".join(report["missing_games"])
            + "."
        )
    short = [f"{g} {n}/{expected}" for g, n in report["runs_per_game"].items() if n < expected]
    lines.append(
        f"Missing runs: {report['missing_runs']} of {expected * len(GAMES)}"
        + (f" (games run with fewer: {', '.join(short)})." if short else ".")
    )
    if report["unfinished_runs"]:
        lines.append(
            "Unfinished (no eval.json, curves only): " + ", ".join(report["unfinished_runs"]) + "."
        )
    boot = report["bootstrap"]
    lines += [
        "",
        f"## Human-normalized aggregates over the {len(games)} games run",
        "",
        f"Point estimate [{boot['confidence']:.0%} CI: {boot['method']}, "
        f"{boot['resamples']} resamples; none when no game has two runs].",
        "",
        "| agent | runs | mean | median | IQM | optimality gap |",
        "|---|---|---|---|---|---|",
        _aggregate_row(report["subject"], total, report["aggregates"]),
    ]
    for agent, estimates in report["published_aggregates"].items():
        if agent == report["subject"]:
            continue
        runs = report["published_runs"][agent]
        lines.append(_aggregate_row(f"{agent} (published)", runs, estimates))
    compare = report["compare"]
    lines += [
        "",
        f"## Probability of improvement over {compare['agent']}",
        "",
        f"P({report['subject']} > {compare['agent']}) averaged over games: "
        f"{_fmt(compare['probability_of_improvement'])}; per game: "
        + ", ".join(f"{g} {p:.2f}" for g, p in compare["per_game"].items())
        + ".",
        "",
        "## Per-game final evaluation (raw score, mean over runs)",
        "",
    ]
    agents = list(report["published_aggregates"])
    lines += [
        "| game | runs | mean | per run | HNS | random | human | " + " | ".join(agents) + " |",
        "|---" * (7 + len(agents)) + "|",
    ]
    for g in games:
        row = per_game[g]
        lines.append(
            f"| {g} | {len(row['scores'])} | {row['mean']:.1f} | "
            + ", ".join(f"{s:.1f}" for s in row["scores"])
            + f" | {row['normalized_mean']:.3f} | {row['random']:.1f} | {row['human']:.1f} | "
            + " | ".join(f"{row['published'][a]:.1f}" for a in agents)
            + " |"
        )
    variant = report["variant"]
    if variant:
        lines += [
            "",
            f"## Variant: {variant['description']}",
            "",
            f"On {len(variant['games'])} games: " + ", ".join(variant["games"]) + ". "
            f"P(variant > default) = {_fmt(variant['probability_of_improvement'])}.",
            "",
            "| group | runs | mean | median | IQM | optimality gap |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("default", "variant"):
            count = sum(len(v) for v in variant[name].values())
            lines.append(_aggregate_row(name, count, variant["aggregates"][name]))
    lines += [""] + [f"![{os.path.splitext(p)[0]}]({p})" for p in images]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib  # Imported here: only plotting needs it.

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_curves(report: dict, path: str) -> None:
    """Human-normalized evaluation score over env steps per game: runs thin, their mean thick."""
    plt = _pyplot()
    games = list(report["curves"])
    cols = min(4, len(games))
    rows = -(-len(games) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), dpi=100, squeeze=False)
    compare = report["compare"]["agent"]
    table = published_scores()[compare]
    for ax, game in zip(axes.flat, games):
        curve = report["curves"][game]
        for run in curve["runs"]:
            ax.plot(run["steps"], run["values"], color="tab:blue", alpha=0.3, lw=1)
        ax.plot(curve["steps"], curve["mean"], color="tab:blue", lw=2, marker="o", ms=3)
        published = evaluation.human_normalized(game, float(table[game].mean()))
        ax.axhline(published, color="tab:red", ls="--", lw=1, label=f"{compare} (published)")
        ax.set_title(f"{game} ({len(curve['runs'])} runs)", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(games) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("env steps", fontsize=9)
    fig.supylabel("human-normalized score", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def score_distribution(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with a normalized score above each tau, averaged over games (rliable)."""
    return np.mean([(np.asarray(s)[:, None] > taus).mean(0) for s in scores.values()], 0)


def plot_profile(report: dict, path: str) -> None:
    """Performance profile (run-score distribution) of the runs and the compared agent."""
    plt = _pyplot()
    ours = {g: v["normalized"] for g, v in report["per_game"].items()}
    theirs = report["compare"]["normalized"]
    top = max(2.0, max(max(v) for v in [*ours.values(), *theirs.values()]))
    taus = np.linspace(0.0, min(top, 8.0), 200)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, scores in ((report["subject"], ours), (report["compare"]["agent"], theirs)):
        ax.plot(taus, score_distribution(scores, taus), label=name)
    poi = report["compare"]["probability_of_improvement"]
    ax.set_title(
        f"P({report['subject']} > {report['compare']['agent']}) = {poi['value']:.2f}", fontsize=10
    )
    ax.set_xlabel("human-normalized score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_variant(report: dict, path: str) -> None:
    """Per-game normalized means of default and variant runs (bars) with each run (dots)."""
    plt = _pyplot()
    variant = report["variant"]
    games = variant["games"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(games) + 2), 4), dpi=100)
    x = np.arange(len(games))
    for offset, name, color in ((-0.2, "default", "tab:blue"), (0.2, "variant", "tab:orange")):
        means = [np.mean(variant[name][g]) for g in games]
        ax.bar(x + offset, means, width=0.4, color=color, alpha=0.7, label=name)
        for i, g in enumerate(games):
            ax.plot([i + offset] * len(variant[name][g]), variant[name][g], "k.", ms=4)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_xticks(x, games, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("human-normalized score")
    ax.set_title(variant["description"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(report: dict, out_dir: str) -> list[str]:
    """Writes report.json, the PNGs and report.md to `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    images = []
    for name, plot, wanted in (
        ("curves.png", plot_curves, report["curves"]),
        ("profile.png", plot_profile, True),
        ("variant.png", plot_variant, report["variant"]),
    ):
        if wanted:
            plot(report, os.path.join(out_dir, name))
            images.append(name)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(report, images))
    return [os.path.join(out_dir, p) for p in ("report.md", "report.json", *images)]

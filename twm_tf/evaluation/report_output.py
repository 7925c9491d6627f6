"""Renders a report (the dict of `report.build`) to report.md, PNG plots and report.json."""

import json
import os
from collections.abc import Sequence

import numpy as np

from twm_tf import games as games_lib
from twm_tf.evaluation import report as report_lib


def _fmt(estimate: dict, digits: int = 3) -> str:
    text = f"{estimate['value']:.{digits}f}"
    if estimate["ci"] is not None:
        low, high = estimate["ci"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _aggregate_row(name: str, runs: int | str, estimates: dict) -> str:
    return (
        f"| {name} | {runs} | "
        + " | ".join(_fmt(estimates[k]) for k in report_lib.AGGREGATES)
        + " |"
    )


def markdown(report: dict, images: Sequence[str] = ()) -> str:
    """report.md: coverage, aggregates, comparison, per-game table, variant, plots."""
    lines = _coverage_lines(report)
    lines += _aggregate_lines(report)
    lines += _comparison_lines(report)
    lines += _per_game_lines(report)
    if report["variant"]:
        lines += _variant_lines(report["variant"])
    lines += [""] + [f"![{os.path.splitext(p)[0]}]({p})" for p in images]
    return "\n".join(lines) + "\n"


def _coverage_lines(report: dict) -> list[str]:
    """The title and which games and runs the report covers."""
    expected = report["expected_runs_per_game"]
    total = sum(report["runs_per_game"].values())
    lines = [
        f"# Atari 100k report: {report['source']}",
        "",
        f"{total} finished runs on {len(report['games'])} of {len(report_lib.GAMES)} games "
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
        f"Missing runs: {report['missing_runs']} of {expected * len(report_lib.GAMES)}"
        + (f" (games run with fewer: {', '.join(short)})." if short else ".")
    )
    if report["unfinished_runs"]:
        lines.append(
            "Unfinished (no eval.json, curves only): " + ", ".join(report["unfinished_runs"]) + "."
        )
    return lines


def _aggregate_lines(report: dict) -> list[str]:
    """The aggregates table: the subject's, then each other published agent's."""
    boot = report["bootstrap"]
    total = sum(report["runs_per_game"].values())
    lines = [
        "",
        f"## Human-normalized aggregates over the {len(report['games'])} games run",
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
    return lines


def _comparison_lines(report: dict) -> list[str]:
    """The probability of improvement over the compared agent, overall and per game."""
    compare = report["compare"]
    return [
        "",
        f"## Probability of improvement over {compare['agent']}",
        "",
        f"P({report['subject']} > {compare['agent']}) averaged over games: "
        f"{_fmt(compare['probability_of_improvement'])}; per game: "
        + ", ".join(f"{g} {p:.2f}" for g, p in compare["per_game"].items())
        + ".",
    ]


def _per_game_lines(report: dict) -> list[str]:
    """The per-game table of raw final scores next to the references and published means."""
    agents = list(report["published_aggregates"])
    lines = [
        "",
        "## Per-game final evaluation (raw score, mean over runs)",
        "",
        "| game | runs | mean | per run | HNS | random | human | " + " | ".join(agents) + " |",
        "|---" * (7 + len(agents)) + "|",
    ]
    for g in report["games"]:
        row = report["per_game"][g]
        lines.append(
            f"| {g} | {len(row['scores'])} | {row['mean']:.1f} | "
            + ", ".join(f"{s:.1f}" for s in row["scores"])
            + f" | {row['normalized_mean']:.3f} | {row['random']:.1f} | {row['human']:.1f} | "
            + " | ".join(f"{row['published'][a]:.1f}" for a in agents)
            + " |"
        )
    return lines


def _variant_lines(variant: dict) -> list[str]:
    """The variant against the default runs on their common games."""
    lines = [
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
    return lines


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
    table = report_lib.published_scores()[compare]
    for ax, game in zip(axes.flat, games):
        curve = report["curves"][game]
        for run in curve["runs"]:
            ax.plot(run["steps"], run["values"], color="tab:blue", alpha=0.3, lw=1)
        ax.plot(curve["steps"], curve["mean"], color="tab:blue", lw=2, marker="o", ms=3)
        published = games_lib.human_normalized(game, float(table[game].mean()))
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


def score_distribution(scores: report_lib.Scores, taus: np.ndarray) -> np.ndarray:
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


FILES = ("report.md", "report.json", "curves.png", "profile.png", "variant.png")  # `write`'s.


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

"""Compares the many-update curves of twm-tf and the original TWM code against their seeds' spread.

    python -m tools.parity.curves_compare --twm_tf='/data/curves/twm_tf-*.npz' \
        --original='/data/curves/orig-*.npz' --out_dir=docs/results/parity --name=curves-small

Reads the runs of both codes (terms.Log files of curves_tf.py and curves_orig.py), smooths every
per-update term with a moving mean over --window updates and writes <name>.png (one panel per
term: each code's mean over seeds, a band from its seeds' min to max) and <name>.json.

Rule: per term and code, the mean of each seed over the final --window updates (held-out terms:
the value of the last evaluation) and the range of those over seeds (max - min). The term is
"within spread" when the gap between the two codes' seed means is no larger than the larger of
the two ranges: the codes differ by no more than a code's seeds differ from each other. Two
identical codes with normally distributed seed values fail the rule now and then, the more
often the fewer the seeds: `false_alarm_rate` (5 % for 3 + 3 seeds, 0.2 % for 5 + 5). The same
rule is applied to each block of --window updates (each evaluation for held-out terms);
`blocks_within` is the fraction of blocks that pass, i.e. how much of the curve agrees.
"""

import functools
import glob
import json
import os

from absl import app
from absl import flags
import numpy as np

from tools.parity import terms
from twm_tf import files

_TWM_TF = flags.DEFINE_string("twm_tf", None, "Glob of twm-tf's runs (curves_tf.py).")
_ORIGINAL = flags.DEFINE_string("original", None, "Glob of the original's runs (curves_orig.py).")
_OUT_DIR = flags.DEFINE_string("out_dir", "docs/results/parity", "Where to write the results.")
_NAME = flags.DEFINE_string("name", "curves-small", "File name of the .png and .json.")
_WINDOW = flags.DEFINE_integer("window", 50, "Updates per moving mean and per final window.")

CODES = ("twm_tf", "original")
COLORS = {"twm_tf": "tab:blue", "original": "tab:orange"}
RULE = (
    "within spread: |mean_twm_tf - mean_original| <= max(range_twm_tf, range_original), where a "
    "code's mean and range (max - min) are over its seeds' final-window means (per-update terms: "
    "mean of the last `window` updates; held-out terms: the last evaluation)"
)


def load_runs(pattern: str) -> list[dict]:
    """Every run matching `pattern`, sorted by path: {"path", and each logged array}."""
    runs = []
    for path in sorted(glob.glob(pattern)):
        with np.load(path) as data:
            # A phase run for 0 updates (e.g. curves_tf --ac_updates=0) logs empty series.
            runs.append({"path": path, **{k: data[k] for k in data.files if data[k].size}})
    return runs


def series_names() -> list[str]:
    """The compared series in panel order: world-model, held-out, then actor-critic terms."""
    return (
        [f"wm/{t}" for t in terms.WORLD_MODEL]
        + [f"heldout/{t}" for t in terms.WORLD_MODEL]
        + [f"ac/{t}" for t in terms.ACTOR_CRITIC]
    )


def moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    """[len(x) - window + 1] means of `window` consecutive entries ('valid' windows)."""
    window = min(window, len(x))
    return np.convolve(x, np.ones(window) / window, mode="valid")


def blocks(name: str, runs: list[dict], window: int) -> np.ndarray:
    """[seeds, blocks] per-seed values the rule compares: block means of `window` updates, or
    each evaluation for held-out terms. Runs of different length are cut to the shortest."""
    arrays = [run[name] for run in runs]
    length = min(len(a) for a in arrays)
    x = np.stack([a[:length] for a in arrays]).astype(np.float64)
    if name.startswith("heldout/"):
        return x
    count = max(length // window, 1)
    return x[:, length - count * window :].reshape(len(runs), count, -1).mean(-1)


@functools.lru_cache
def false_alarm_rate(seeds_a: int, seeds_b: int, trials: int = 200_000) -> float:
    """How often the rule calls two codes "outside spread" when they are the same: the
    fraction of `trials` draws of seeds_a and seeds_b normal seed values whose gap exceeds the
    larger range (fixed draws, so a report is reproducible)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((trials, seeds_a)), rng.standard_normal((trials, seeds_b))
    gap = np.abs(a.mean(1) - b.mean(1))
    return float(np.mean(gap > np.maximum(np.ptp(a, 1), np.ptp(b, 1))))


def judge(values: dict[str, np.ndarray]) -> dict:
    """The rule on {code: [seeds] values}: means, ranges, gap and verdict."""
    out = {
        code: {"seeds": v.tolist(), "mean": float(v.mean()), "range": float(np.ptp(v))}
        for code, v in values.items()
    }
    if len(values) < 2:
        return {**out, "verdict": "insufficient runs (both codes needed)"}
    gap = abs(out["twm_tf"]["mean"] - out["original"]["mean"])
    if any(len(v) < 2 for v in values.values()):
        return {**out, "gap": gap, "verdict": "insufficient runs (>= 2 seeds per code)"}
    spread = max(out["twm_tf"]["range"], out["original"]["range"])
    verdict = "within spread" if gap <= spread else "outside spread"
    ratio = gap / spread if spread > 0 else float("inf")
    alarm = false_alarm_rate(*(len(v) for v in values.values()))
    return {
        **out,
        "gap": gap,
        "spread": spread,
        "gap_over_spread": ratio,
        "verdict": verdict,
        "false_alarm_rate": alarm,
    }


def check_heldout(runs: dict[str, list[dict]]) -> None:
    """Raises ValueError unless every run with held-out terms logged the same held-out windows
    (`heldout_starts`: plan.py draws them after the training windows, so a plan of other sizes,
    such as a world-model-only run's, measures on other windows)."""
    measured = [r for rs in runs.values() for r in rs if any(k.startswith("heldout/") for k in r)]
    if not measured:
        return
    missing = [r["path"] for r in measured if "heldout_starts" not in r]
    if missing:
        raise ValueError(
            f"runs without heldout_starts (logged since curves_*.py record it): {missing}"
        )
    first = measured[0]
    other = [
        r["path"]
        for r in measured
        if not np.array_equal(r["heldout_starts"], first["heldout_starts"])
    ]
    if other:
        raise ValueError(
            f"held-out windows differ from {first['path']}'s in {other}: compare runs of the same "
            "--wm_updates and --ac_updates"
        )


def compare(runs: dict[str, list[dict]], window: int) -> dict:
    """The report: per series the final-window judgement and the fraction of blocks within."""
    check_heldout(runs)
    report = {
        "rule": RULE,
        "window": window,
        "runs": {code: [r["path"] for r in rs] for code, rs in runs.items()},
        "terms": {},
    }
    report["terms"] = judge_terms(series_names(), runs, lambda name, rs: blocks(name, rs, window))
    report["summary"] = summary(report["terms"])
    return report


def judge_terms(names, runs: dict[str, list[dict]], blocks_fn, min_blocks: int = 1) -> dict:
    """{name: judge_blocks} for each of `names`, over the runs that logged it (a run of 0
    updates in a phase logs none of its terms); blocks_fn(name, runs) -> [seeds, blocks]."""
    terms = {}
    for name in names:
        logged = {code: [r for r in rs if name in r] for code, rs in runs.items()}
        logged = {code: rs for code, rs in logged.items() if rs}
        if logged:
            terms[name] = judge_blocks(
                {code: blocks_fn(name, rs) for code, rs in logged.items()}, min_blocks
            )
    return terms


def judge_blocks(per_code: dict[str, np.ndarray], min_blocks: int = 1) -> dict:
    """The rule on the last block of per_code's [seeds, blocks] arrays, and on every block where
    all are judged and there are at least `min_blocks` (blocks_within, blocks_outside)."""
    entry = judge({code: b[:, -1] for code, b in per_code.items()})
    count = min(b.shape[1] for b in per_code.values())
    verdicts = [
        judge({code: b[:, i] for code, b in per_code.items()})["verdict"] for i in range(count)
    ]
    if count >= min_blocks and all(v in ("within spread", "outside spread") for v in verdicts):
        entry["blocks_within"] = sum(v == "within spread" for v in verdicts) / count
        entry["blocks_outside"] = [i for i, v in enumerate(verdicts) if v != "within spread"]
    return entry


def summary(entries: dict[str, dict]) -> dict[str, list[str]]:
    """verdict -> the sorted names of the terms judged so."""
    verdicts = {name: entry["verdict"] for name, entry in entries.items()}
    return {
        verdict: sorted(n for n, v in verdicts.items() if v == verdict)
        for verdict in sorted(set(verdicts.values()))
    }


def plot(runs: dict[str, list[dict]], window: int, path: str) -> None:
    import matplotlib  # noqa: PLC0415 (only plotting needs it)

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    names = [n for n in series_names() if any(n in r for rs in runs.values() for r in rs)]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), dpi=100, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for code, rs in runs.items():
            rs = [r for r in rs if name in r]
            if not rs:
                continue
            length = min(len(r[name]) for r in rs)
            if name.startswith("heldout/"):
                x = rs[0]["heldout_step"][:length]
                curves = np.stack([r[name][:length] for r in rs])
                style = dict(marker="o", ms=3)
            else:
                curves = np.stack([moving_mean(r[name][:length], window) for r in rs])
                x = np.arange(length - curves.shape[1], length) + 1
                style = {}
            color = COLORS[code]
            ax.plot(x, curves.mean(0), color=color, lw=1.5, label=f"{code} ({len(rs)})", **style)
            ax.fill_between(x, curves.min(0), curves.max(0), color=color, alpha=0.25, lw=0)
        values = [r[name] for rs in runs.values() for r in rs if name in r]
        low, high = min(v.min() for v in values), max(v.max() for v in values)
        if not name.startswith("ac/") and low > 0 and high / low > 20:  # the first updates
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    xlabel = (
        f"update (world model, then actor-critic); moving mean of {window}; band: seeds' min-max"
    )
    save_figure(fig, axes, len(names), xlabel, path)


def save_figure(fig, axes, used: int, xlabel: str, path: str) -> None:
    """Hides the unused panels after the first `used`, labels and writes the figure to `path`."""
    from matplotlib import pyplot as plt  # noqa: PLC0415 (only plotting needs it)

    for ax in axes.flat[used:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel(xlabel, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": files.PNG_SOFTWARE})
    plt.close(fig)


def write(compare_fn=None, plot_fn=None) -> dict:
    """Compares the flags' runs and writes <name>.json and .png; prints and returns the report.

    compare_fn(runs, window) -> report and plot_fn(runs, window, path) default to this module's
    (pretrain_compare passes its own).
    """
    if not (_TWM_TF.value and _ORIGINAL.value):
        raise app.UsageError("--twm_tf and --original: globs of each code's runs are required")
    runs = {"twm_tf": load_runs(_TWM_TF.value), "original": load_runs(_ORIGINAL.value)}
    if not any(runs.values()):
        raise app.UsageError("no run matches --twm_tf or --original")
    os.makedirs(_OUT_DIR.value, exist_ok=True)
    base = os.path.join(_OUT_DIR.value, _NAME.value)
    report = (compare_fn or compare)(runs, _WINDOW.value)
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
    (plot_fn or plot)(runs, _WINDOW.value, base + ".png")
    for name, entry in report["terms"].items():
        gap = f"gap/spread {entry['gap_over_spread']:.2f}" if "spread" in entry else ""
        within = f"blocks within {entry['blocks_within']:.0%}" if "blocks_within" in entry else ""
        print(f"{name:28s} {entry['verdict']:16s} {gap:18s} {within}")
    print(f"wrote {base}.json, {base}.png")
    return report


def main(argv):
    del argv
    write()


if __name__ == "__main__":
    app.run(main)

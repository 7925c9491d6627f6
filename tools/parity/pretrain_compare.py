"""Compares the pretraining runs of twm-tf and the original, and measures the AC share's effect.

    python -m tools.parity.pretrain_compare --twm_tf='/data/pretrain/twm_tf-*.npz' \
        --original='/data/pretrain/orig-*.npz' --out_dir=docs/results/parity --name=pretrain-small

Reads the runs of both codes (terms.Log files of pretrain_tf.py and pretrain_orig.py) and judges
every term with curves_compare's rule: the gap between the two codes' seed means against the
larger of their seed ranges. Per-update terms (pre_<phase>/) are judged on the mean of the final
--window updates and on every block of --window updates, as curves_compare; held-out terms
(end_<phase>/, heldout_ac/) on their last value and on every evaluation.

Share effect: a run whose actor-critic share is larger than twm-tf's default (0.7, the original
as released) was measured on held-out windows after the default share's last update too, and up
to there it is the default share's run (pretrain_plan.py). Per code, the held-out critic terms at
that point and at the end are compared with the same rule; "outside spread" means the longer
actor-critic pretraining moved the term by more than the seeds differ.

Writes <name>.json and <name>.png (each code's seed mean, band from min to max; held-out terms
at the end of a phase as one point per seed).
"""

from absl import app
from absl import flags
import numpy as np

from tools.parity import curves_compare
from tools.parity import pretrain_plan

# The flags are curves_compare's, defined when it is imported: --twm_tf and --original (globs of
# pretrain_tf.py's and pretrain_orig.py's runs), --out_dir, --name and --window.
FLAGS = flags.FLAGS
FLAGS.set_default("name", "pretrain-small")

HELDOUT_AC = "heldout_ac/"


def blocks(name: str, runs: list[dict], window: int) -> np.ndarray:
    """[seeds, blocks] values the rule compares: each evaluation of a held-out series (one for
    end_<phase>/), block means of `window` updates otherwise (curves_compare.blocks)."""
    if name.startswith(HELDOUT_AC):
        length = min(len(run[name]) for run in runs)
        return np.stack([run[name][:length] for run in runs]).astype(np.float64)
    return curves_compare.blocks(name, runs, window)


def compare(runs: dict[str, list[dict]], window: int) -> dict:
    """The report: per series the final judgement and the fraction of blocks within spread."""
    report = {
        "rule": curves_compare.RULE,
        "window": window,
        "runs": {code: [r["path"] for r in rs] for code, rs in runs.items()},
        "ac_share": {
            code: sorted({float(r["ac_share"][0]) for r in rs}) for code, rs in runs.items()
        },
        "terms": {},
    }
    report["terms"] = curves_compare.judge_terms(
        pretrain_plan.series_names(), runs, lambda name, rs: blocks(name, rs, window), min_blocks=2
    )
    report["summary"] = curves_compare.summary(report["terms"])
    report["share_effect"] = {code: share_effect(rs) for code, rs in runs.items() if rs}
    return report


def share_effect(runs: list[dict]) -> dict:
    """Per held-out critic term: the seeds' values after the default share's updates and at the
    end, judged with curves_compare's rule (both points need every run)."""
    default = {int(r["default_share_ac_updates"][0]) for r in runs}
    if len(default) != 1 or any(int(r["updates"][2]) <= min(default) for r in runs):
        return {"note": "no run trained beyond the default share's actor-critic updates"}
    default = default.pop()
    out = {
        "default_share_ac_updates": default,
        "run_ac_updates": [int(r["updates"][2]) for r in runs],
    }
    for term in (*pretrain_plan.AC_TERMS, *pretrain_plan.MC_TERMS):
        name = HELDOUT_AC + term
        if not all(name in r for r in runs):
            continue
        at_default = np.array([r[name][list(r["heldout_ac_step"]).index(default)] for r in runs])
        at_end = np.array([r[name][-1] for r in runs])
        judged = curves_compare.judge({"twm_tf": at_default, "original": at_end})
        labels = {"twm_tf": "default_share", "original": "run_share"}
        out[term] = {labels.get(k, k): v for k, v in judged.items()}
        out[term]["change"] = float(at_end.mean() - at_default.mean())
    return out


def plot(runs: dict[str, list[dict]], window: int, path: str) -> None:
    import matplotlib  # noqa: PLC0415 (only plotting needs it)

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    names = [
        n for n in pretrain_plan.series_names() if any(n in r for rs in runs.values() for r in rs)
    ]
    cols = 6
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), dpi=100, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for position, (code, rs) in enumerate(runs.items()):
            rs = [r for r in rs if name in r]
            if not rs:
                continue
            color = curves_compare.COLORS[code]
            label = f"{code} ({len(rs)})"
            if name.startswith("end_"):
                values = [r[name][-1] for r in rs]
                ax.plot([position] * len(values), values, "o", color=color, ms=4, label=label)
                ax.plot([position - 0.2, position + 0.2], [np.mean(values)] * 2, color=color)
                ax.set_xlim(-0.6, len(runs) - 0.4)
                ax.set_xticks([])
                continue
            length = min(len(r[name]) for r in rs)
            if name.startswith(HELDOUT_AC):
                x = rs[0]["heldout_ac_step"][:length]
                curves = np.stack([r[name][:length] for r in rs])
                style = dict(marker="o", ms=3)
            else:
                curves = np.stack(
                    [curves_compare.moving_mean(r[name][:length], window) for r in rs]
                )
                x = np.arange(length - curves.shape[1], length) + 1
                style = {}
            ax.plot(x, curves.mean(0), color=color, lw=1.5, label=label, **style)
            ax.fill_between(x, curves.min(0), curves.max(0), color=color, alpha=0.25, lw=0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    xlabel = (
        f"update of the phase; moving mean of {window}; band: seeds' min-max; "
        "end_<phase>: one point per seed"
    )
    curves_compare.save_figure(fig, axes, len(names), xlabel, path)


def main(argv):
    del argv
    report = curves_compare.write(compare, plot)
    for code, effect in report["share_effect"].items():
        for term, entry in effect.items():
            if isinstance(entry, dict):
                print(
                    f"share {code:9s} {term:14s} change {entry['change']:+.4g} {entry['verdict']}"
                )


if __name__ == "__main__":
    app.run(main)

"""Runs a grid of games x seeds x config variants as Ray Tune trials, then reports it.

python -m launch.sweep --root=runs/grid                      # 26 games x 5 seeds, paper preset
python -m launch.sweep --games=Boxing,Krull --seeds=0,1 --preset=small --root=runs/small
python -m launch.sweep --games=Pong --variant=base --variant=uniform:replay_tau=inf --root=runs/tau
python -m launch.sweep --address=ray://head:10001 --gpus_per_run=0.5 --root=/shared/grid

Each trial is `launch.train` on <root>/<variant>/<game>-<seed> (output in <that>.log). Running
the same command again skips finished runs and resumes interrupted ones. At the end,
<root>/report/<variant>/ holds launch.report's output over the finished runs of each variant and
<root>/report/<variant>-vs-<first variant>/ the comparison of each later variant with the first.
"""

import math
import os

from absl import app
from absl import flags

import launch
from twm_tf import config_flags
from twm_tf import files
from twm_tf import games as games_lib
from twm_tf.evaluation import report
from twm_tf.evaluation import report_output
from twm_tf.run import sweep

_ROOT = flags.DEFINE_string("root", None, "Directory of the grid's run directories.")
_GAMES = flags.DEFINE_list("games", list(games_lib.GAMES), "Games (default: the 26 of Atari 100k).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds of every game and variant.")
_VARIANTS = flags.DEFINE_multi_string(
    "variant",
    [sweep.BASE],
    "NAME[:FIELD=VALUE[:FIELD=VALUE...]], repeatable: config variants of the grid, e.g. "
    "'uniform:replay_tau=inf' (default: one variant 'base' without changes).",
)
_ADDRESS = flags.DEFINE_string(
    "address", None, "Ray cluster to submit to (default: a local Ray on this machine)."
)
_CPUS_PER_RUN = flags.DEFINE_float("cpus_per_run", 1.0, "CPUs Ray reserves per trial.")
_GPUS_PER_RUN = flags.DEFINE_float("gpus_per_run", 0.0, "GPUs per trial; fractions share a GPU.")
_NUM_CPUS = flags.DEFINE_integer("num_cpus", None, "CPUs of the local Ray (default: all).")
_MAX_FAILURES = flags.DEFINE_integer(
    "max_failures", 2, "Retries of a failed trial, each resuming its run directory."
)
config_flags.define_flags()
flags.mark_flag_as_required("root")


def _check_args() -> tuple[list[int], dict[str, dict]]:
    try:
        seeds = [int(seed) for seed in _SEEDS.value]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated ints, got {_SEEDS.value}") from None
    if not _GAMES.value or not seeds:
        raise ValueError("--games and --seeds must each name at least one")
    # Checked here, before Ray starts: Ray's own errors for these are tracebacks.
    if not 0 < _CPUS_PER_RUN.value < math.inf:
        raise ValueError(
            f"--cpus_per_run must be > 0 (a trial trains on CPU), got {_CPUS_PER_RUN.value}"
        )
    if not 0 <= _GPUS_PER_RUN.value < math.inf:
        raise ValueError(f"--gpus_per_run must be >= 0, got {_GPUS_PER_RUN.value}")
    if _NUM_CPUS.value is not None and _NUM_CPUS.value < _CPUS_PER_RUN.value:
        raise ValueError(
            f"--num_cpus={_NUM_CPUS.value} holds no trial of --cpus_per_run={_CPUS_PER_RUN.value}"
        )
    if _MAX_FAILURES.value < 0:
        raise ValueError(f"--max_failures must be >= 0, got {_MAX_FAILURES.value}")
    if os.path.lexists(_ROOT.value) and not os.path.isdir(_ROOT.value):
        raise ValueError(f"--root={_ROOT.value} is a file, not a directory")
    files.check_writable(_ROOT.value, "--root")
    variants = dict(sweep.parse_variant(text) for text in _VARIANTS.value)
    if len(variants) != len(_VARIANTS.value):
        raise ValueError(f"--variant names must be distinct, got {_VARIANTS.value}")
    return seeds, variants


def _report(root: str, variants: list[str], seeds: int) -> None:
    """Writes launch.report's output per variant, and each later variant against the first."""
    loaded = {}
    for variant in variants:
        try:
            loaded[variant] = report.load_runs(os.path.join(root, variant, "*"))
        except files.FileError as error:  # A run's file is damaged: say which.
            print(f"no report {variant}: {error}")
            continue
        except ValueError:  # No run directory yet.
            continue
    first = variants[0]
    jobs = [(variant, dict(runs=runs)) for variant, runs in loaded.items()]
    if first in loaded:
        jobs += [
            (f"{variant}-vs-{first}", dict(runs=loaded[first], variant=runs))
            for variant, runs in loaded.items()
            if variant != first
        ]
    for name, runs in jobs:
        try:
            data = report.build(**runs, source=os.path.join(root, "*"), expected_runs=seeds)
        except ValueError as error:  # e.g. no finished run yet
            print(f"no report {name}: {error}")
            continue
        for path in report_output.write(data, os.path.join(root, "report", name)):
            print(path)


def main(argv):
    del argv
    launch.quiet_library_logs()
    try:
        seeds, variants = _check_args()
        trials = sweep.grid(
            root=_ROOT.value,
            preset=flags.FLAGS.preset,
            games=_GAMES.value,
            seeds=seeds,
            variants=variants,
            common=config_flags.flag_changes(),
        )
    except ValueError as error:
        launch.fail(error)
    outcomes = sweep.run(
        trials,
        root=_ROOT.value,
        address=_ADDRESS.value,
        cpus_per_run=_CPUS_PER_RUN.value,
        gpus_per_run=_GPUS_PER_RUN.value,
        max_failures=_MAX_FAILURES.value,
        num_cpus=_NUM_CPUS.value,
    )
    for trial in trials:
        outcome = outcomes[trial.name]
        detail = outcome.get("error") or f"final mean {outcome['mean']:.1f}"
        print(f"{trial.name}: {outcome['status']} ({detail})")
    _report(os.path.abspath(_ROOT.value), list(variants), len(seeds))
    failed = [name for name, outcome in outcomes.items() if outcome["status"] == "failed"]
    if failed:
        launch.fail(f"{len(failed)} of {len(trials)} trials failed: {', '.join(failed)}")


if __name__ == "__main__":
    app.run(main)

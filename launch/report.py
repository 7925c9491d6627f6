"""Atari 100k report of a grid of runs (or of a published agent): tables, aggregates, plots.

python -m launch.report --runs='runs/*-[0-4]' --out=report --compare=IRIS
python -m launch.report --published=TWM --out=report_twm
python -m launch.report --runs='runs/*' --variant_runs='runs_uniform/*' --out=report_tau
"""

from absl import app
from absl import flags

import launch
from twm_tf import files
from twm_tf.evaluation import report
from twm_tf.evaluation import report_output

_RUNS = flags.DEFINE_string("runs", None, "Glob of launch.train run directories to report.")
_PUBLISHED = flags.DEFINE_string(
    "published", None, "Report a published agent of twm_tf/reference/atari100k_runs.csv instead."
)
_COMPARE = flags.DEFINE_string(
    "compare", "TWM", "Published agent for the probability of improvement and the profile."
)
_VARIANT_RUNS = flags.DEFINE_string(
    "variant_runs", None, "Glob of an ablation's run directories, compared with --runs."
)
_OUT = flags.DEFINE_string(
    "out",
    None,
    "Directory for report.md, report.json and the PNGs: new, or an earlier report (replaced).",
)
_RESAMPLES = flags.DEFINE_integer(
    "resamples", 10_000, "Bootstrap resamples per interval.", lower_bound=1
)
_SEED = flags.DEFINE_integer("seed", 0, "Random state of the bootstrap.", lower_bound=0)
_EXPECTED_RUNS = flags.DEFINE_integer(
    "expected_runs", report.EXPECTED_RUNS, "Runs per game of a full grid.", lower_bound=1
)
flags.mark_flag_as_required("out")
flags.mark_flags_as_mutual_exclusive(["runs", "published"], required=True)


def main(argv):
    del argv
    launch.quiet_library_logs()
    try:
        out = files.OutputDir(_OUT.value, "--out", report_output.FILES, ("report.json", "games"))
        runs = report.load_runs(_RUNS.value, "runs") if _RUNS.value else None
        variant = (
            report.load_runs(_VARIANT_RUNS.value, "variant_runs") if _VARIANT_RUNS.value else None
        )
        data = report.build(
            runs=runs,
            published=_PUBLISHED.value,
            compare=_COMPARE.value,
            variant=variant,
            source=_RUNS.value or "",
            resamples=_RESAMPLES.value,
            seed=_SEED.value,
            expected_runs=_EXPECTED_RUNS.value,
        )
        with out.staged() as staging:
            paths = report_output.write(data, staging)
    except ValueError as error:  # One line naming the flag or file, not absl's usage text.
        launch.fail(error)
    for path in paths:
        print(out.final(path))


if __name__ == "__main__":
    app.run(main)

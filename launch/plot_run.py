"""Plots a run's learning curves (training episodes, evaluations, random policy) to a PNG.

python -m launch.plot_run --run_dir=runs/boxing --out=boxing.png
"""

import os

from absl import app
from absl import flags

import launch
from twm_tf import files
from twm_tf.evaluation import curves
from twm_tf.run import run_dir as run_dir_lib

_RUN_DIR = flags.DEFINE_string("run_dir", None, "A launch.train run directory.")
_OUT = flags.DEFINE_string(
    "out", None, "PNG to write: new, or an earlier plot (default: <run_dir>/curves.png)."
)
_WINDOW = flags.DEFINE_integer(
    "window", 10, "Training episodes per smoothing window.", lower_bound=1
)
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    out = _OUT.value or os.path.join(_RUN_DIR.value, "curves.png")
    if not out.endswith(".png"):
        launch.fail(f"--out={out}: expected a file name ending in .png")
    try:
        data = curves.load(_RUN_DIR.value)
        config = files.read_json(
            run_dir_lib.path(_RUN_DIR.value, run_dir_lib.CONFIG),
            "the run's config",
            {"game": str, "seed": int},
        )
        with files.output_file(out, "--out", files.is_tagged_png) as staging:
            curves.plot(data, f"{config['game']} (seed {config['seed']})", staging, _WINDOW.value)
    except ValueError as error:  # files.FileError included.
        launch.fail(error)
    print(out)


if __name__ == "__main__":
    app.run(main)

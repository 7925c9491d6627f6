"""Plots a run's learning curves (training episodes, evaluations, random policy) to a PNG.

python -m launch.plot_run --run_dir=runs/boxing --out=boxing.png
"""

import json
import os

from absl import app
from absl import flags

import launch
from twm_tf import curves
from twm_tf import run_dir as run_dir_lib

_RUN_DIR = flags.DEFINE_string("run_dir", None, "A launch.train run directory.")
_OUT = flags.DEFINE_string("out", None, "PNG to write (default: <run_dir>/curves.png).")
_WINDOW = flags.DEFINE_integer("window", 10, "Training episodes per smoothing window.")
flags.mark_flag_as_required("run_dir")


def main(argv):
    del argv
    launch.quiet_library_logs()
    try:
        data = curves.load(_RUN_DIR.value)
    except ValueError as error:
        launch.fail(error)
    with open(run_dir_lib.path(_RUN_DIR.value, run_dir_lib.CONFIG)) as f:
        config = json.load(f)
    out = _OUT.value or os.path.join(_RUN_DIR.value, "curves.png")
    curves.plot(data, f"{config['game']} (seed {config['seed']})", out, window=_WINDOW.value)
    print(out)


if __name__ == "__main__":
    app.run(main)

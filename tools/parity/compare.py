"""Runs twm-tf's update on a parity case and compares it with the original's results.

    .venv/bin/python -m tools.parity.compare --case=/tmp/parity/small --name=small

Writes docs/results/parity/one_update-<name>.json: every tensor's relative difference, the max
per category with pass/fail against --tolerance, the config fields that differ from the paper's
and the adapters the torch side ran with. Exits 1 if a category fails.
"""

import datetime
import json
import os
import sys

import numpy as np
from absl import app
from absl import flags

from tools.parity import case as case_lib
from tools.parity import diff
from tools.parity import draws as draws_lib
from tools.parity import twm_update

_CASE = flags.DEFINE_string("case", None, "Case directory (make_case + torch_side).", required=True)
_NAME = flags.DEFINE_string("name", None, "Report name: one_update-<name>.json.", required=True)
_ORIG = flags.DEFINE_string("orig", None, "The torch side's results (default <case>/orig.npz).")
_REFERENCE = flags.DEFINE_bool(
    "reference", True, "Use <case>/orig64.npz (torch_side --float64) as the rounding reference."
)
_OUT_DIR = flags.DEFINE_string("out_dir", "docs/results/parity", "Report directory.")
_TOLERANCE = flags.DEFINE_float("tolerance", diff.TOLERANCE, "Max relative difference.")


def case_summary(case) -> dict:
    """What a case exercises, beyond its config."""
    batch, config = case.batch, case.config
    return {
        "windows": int(batch.actions.shape[0]),
        "window_steps": int(batch.actions.shape[1]),
        "windows_with_an_episode_end": int(batch.dones[:, 1:-1].any(axis=1).sum()),
        "rollouts": int(len(case.starts)),
        "horizon": config.horizon,
        "dyn_dropout": config.dyn_dropout,
        "discount_bias": float(case.weights["dynamics/discount_head/final/bias"][0]),
        "num_actions": case.num_actions,
    }


def report(case, ours: dict, theirs: dict, reference: dict | None, tolerance: float) -> dict:
    # The released original keeps no Adam state for the latent head (torch_side --no_latent_loss).
    only_ours = sorted(set(ours) - set(theirs))
    ours = {k: v for k, v in ours.items() if k not in only_ours}
    if reference is not None:
        reference = {k: v for k, v in reference.items() if k not in only_ours}
    diffs = diff.differences(ours, theirs, case.weights, reference)
    summary = diff.summary(diffs, tolerance)
    return {
        "date": datetime.date.today().isoformat(),
        "config_changes_from_paper": {k: str(v) for k, v in case_lib.describe(case.config).items()},
        "case": case_summary(case),
        "adapters": [str(a) for a in theirs.get("adapters", [])],
        "tolerance": tolerance,
        "float64_reference": reference is not None,
        "pass": not only_ours and all(entry["pass"] is not False for entry in summary.values()),
        "only_in_twm_tf": only_ours,
        "summary": summary,
        "discrete_mismatches": diff.mismatches(ours, theirs),
        "tensors": diffs,
    }


def _load(path: str) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def main(argv):
    del argv
    case = case_lib.load(_CASE.value)
    draws = draws_lib.load(os.path.join(_CASE.value, case_lib.DRAWS))
    ours = twm_update.run(case, draws)
    theirs = _load(_ORIG.value or os.path.join(_CASE.value, "orig.npz"))
    reference_path = os.path.join(_CASE.value, "orig64.npz")
    use_reference = _REFERENCE.value and os.path.exists(reference_path)
    reference = _load(reference_path) if use_reference else None
    if "imagination/z" not in theirs:  # torch_side --wm_only
        ours = {k: v for k, v in ours.items() if k.split("/")[0] in ("observation", "dynamics")}
        reference = None
    result = report(case, ours, theirs, reference, _TOLERANCE.value)
    os.makedirs(_OUT_DIR.value, exist_ok=True)
    path = os.path.join(_OUT_DIR.value, f"one_update-{_NAME.value}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    for name, entry in result["summary"].items():
        mark = {True: "ok  ", False: "FAIL", None: "info"}[entry["pass"]]
        float64 = f"  float64 {entry['max_float64']:.1e}" if "max_float64" in entry else ""
        print(f"{mark} {name:24s} {entry['max']:.2e}{float64}  {entry['worst']}")
        for key in entry["failing"][:3]:
            print(f"       failing: {key} {result['tensors'][key]}")
        if len(entry["failing"]) > 3:
            print(f"       ... {len(entry['failing'])} failing tensors")
    if result["only_in_twm_tf"]:
        print(f"FAIL only in twm-tf: {len(result['only_in_twm_tf'])} tensors, e.g. "
              f"{result['only_in_twm_tf'][0]}")  # fmt: skip
    print(f"discrete mismatches: {result['discrete_mismatches']}; wrote {path}")
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    app.run(main)

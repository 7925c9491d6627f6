"""Relative differences between twm-tf's and the original's results of one update (NumPy only).

A tensor's difference is ||a - b|| / ||b|| over all its entries, in float64 (1 where b is zero
and a is not: the released original's latent head, which never gets a gradient). Each
twm-tf tensor is compared with the original run in float32 (`original`) and, when the case has
one, with the original run in float64 (`float64`, the rounding reference), which also gives the
original's own rounding error (`original_float64`). A tensor passes when

    original <= tolerance,  or  float64 <= (1 + SLACK) original_float64 + tolerance

i.e. twm-tf agrees with the original, or is about as close to the exact result as the original
itself is: reductions over millions of terms (the decoder's last layers' gradients) carry float32
rounding of up to 3e-2 in both codes (README "Precision"), and a tensor derived from several of
them (a clipped moment) adds their errors with signs that differ between the codes.

Categories group the keys of twm_update.py: `<model>/<grad|grad_norm|weight|exp_avg|exp_avg_sq>`,
`imagination`, and `<model>/update` (weight after minus before: the step itself, which the
weights' norm would hide). `update` is reported but not judged: Adam's first step is
lr g / (|g| + eps), so an entry with |g| below eps = 1e-5 carries its gradient's float32 rounding
scaled by 1 / eps, and an entry of a weight near 1 (LayerNorm gamma) is stored to one float32 ulp,
1.2e-7 or 1.2e-3 of a step of lr = 1e-4; the weights and moments are judged instead.
"""

import numpy as np

TOLERANCE = 1e-4
SLACK = 0.1
INFORMATIONAL = ("update",)


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape:
        raise ValueError(f"shapes differ: {ours.shape} vs {theirs.shape}")
    scale = np.linalg.norm(theirs)
    if scale == 0.0:
        return 0.0 if np.linalg.norm(ours) == 0.0 else 1.0
    return float(np.linalg.norm(ours - theirs) / scale)


def category(key: str) -> str:
    parts = key.split("/")
    return "imagination" if parts[0] == "imagination" else "/".join(parts[:2])


def _with_updates(results: dict, initial: dict) -> dict:
    """`results` plus `<model>/update/<path>` = weight after - weight before."""
    out = {k: v for k, v in results.items() if k != "adapters"}
    for key, value in list(out.items()):
        model, what, *path = key.split("/")
        if what == "weight":
            path = "/".join(path)
            out[f"{model}/update/{path}"] = (
                np.asarray(value, np.float64) - initial[f"{model}/{path}"]
            )
    return out


def differences(ours: dict, theirs: dict, initial: dict, reference: dict | None = None) -> dict:
    """{key: {"original": d, ["float64": d, "original_float64": d]}} for every key.

    Args:
      ours, theirs: twm-tf's and the original's results (twm_update.py keys).
      initial: "<model>/<path>" -> weight before the step.
      reference: the original's results in float64, or None.

    Raises:
      ValueError: naming keys one side has and the other lacks.
    """
    ours, theirs = _with_updates(ours, initial), _with_updates(theirs, initial)
    if missing := sorted(set(ours) ^ set(theirs)):
        raise ValueError(
            f"keys on one side only: {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    reference = None if reference is None else _with_updates(reference, initial)
    out = {}
    for key in sorted(theirs):
        out[key] = {"original": relative(ours[key], theirs[key])}
        if reference is not None:
            out[key]["float64"] = relative(ours[key], reference[key])
            out[key]["original_float64"] = relative(theirs[key], reference[key])
    return out


def passes(entry: dict, tolerance: float = TOLERANCE) -> bool:
    if entry["original"] <= tolerance:
        return True
    if "float64" not in entry:
        return False
    return entry["float64"] <= (1 + SLACK) * entry["original_float64"] + tolerance


def summary(diffs: dict, tolerance: float = TOLERANCE) -> dict:
    """Per category: max differences, the worst key, tensors failing, pass/fail (or None)."""
    out = {}
    for key, entry in diffs.items():
        name = category(key)
        cat = out.setdefault(name, {"max": 0.0, "worst": key, "failing": []})
        if entry["original"] >= cat["max"]:
            cat["max"], cat["worst"] = entry["original"], key
        for field in ("float64", "original_float64"):
            if field in entry:
                cat[f"max_{field}"] = max(cat.get(f"max_{field}", 0.0), entry[field])
        if not passes(entry, tolerance):
            cat["failing"].append(key)
    for name, cat in out.items():
        judged = name.split("/")[-1] not in INFORMATIONAL
        cat["pass"] = (not cat["failing"]) if judged else None
        if not judged:
            cat["failing"] = []
    return dict(sorted(out.items()))


def mismatches(ours: dict, theirs: dict) -> dict[str, int]:
    """Entries that differ in the discrete imagination tensors (actions, dones)."""
    return {
        key: int(np.sum(np.asarray(ours[key]) != np.asarray(theirs[key])))
        for key in ("imagination/actions", "imagination/dones")
        if key in theirs
    }

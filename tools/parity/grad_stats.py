"""Moments of one world-model update's gradients over its random draws, and their comparison.

One update of either code is a random function of its draws (latent samples, dropout masks).
From the same weights and windows, twm-tf (grad_stats_tf.py) and the original
(grad_stats_orig.py) each compute the dynamics and observation gradients K times with fresh
draws and no optimizer step, and store per tensor the sum and the sum of squares over the K
draws (`Moments`, twm-tf's layout). If both codes draw the same distributions, each tensor's mean
gradient agrees within Monte Carlo error and its variance over the draws is the same.
`compare` measures both per tensor:

  z = ||mean_tf - mean_orig|| / sqrt(sum(var_tf + var_orig) / K)   ~1 when the means agree
  variance ratio = sum(var_tf) / sum(var_orig)                      ~1 when the noise agrees

(var per element over the K draws, summed over the tensor's elements). NumPy only: both venvs
import it.
"""

import numpy as np


class Moments:
    """Per-key running sums over draws of one batch each: key -> (sum, sum of squares)."""

    def __init__(self):
        self.count: dict[int, int] = {}
        self.sums: dict[tuple[int, str], np.ndarray] = {}
        self.squares: dict[tuple[int, str], np.ndarray] = {}

    def add(self, batch: int, gradients: dict[str, np.ndarray]) -> None:
        """One draw's gradients on window batch `batch`: {"<model>/<path>": array}."""
        self.count[batch] = self.count.get(batch, 0) + 1
        for key, value in gradients.items():
            value = np.asarray(value, np.float64)
            index = (batch, key)
            self.sums[index] = self.sums.get(index, 0.0) + value
            self.squares[index] = self.squares.get(index, 0.0) + value * value

    def save(self, path: str) -> None:
        arrays = {f"count/{b}": np.asarray(n) for b, n in self.count.items()}
        arrays.update({f"sum/{b}/{k}": v for (b, k), v in self.sums.items()})
        arrays.update({f"sumsq/{b}/{k}": v for (b, k), v in self.squares.items()})
        np.savez(path, **arrays)


def _load(path: str) -> dict:
    """batch -> (count, {key: mean}, {key: per-element unbiased variance})."""
    with np.load(path) as data:
        out = {}
        for name in data.files:
            if name.startswith("count/"):
                batch = name.split("/")[1]
                k = int(data[name])
                prefix = f"sum/{batch}/"
                keys = [f[len(prefix) :] for f in data.files if f.startswith(prefix)]
                means = {key: data[prefix + key] / k for key in keys}
                variances = {
                    key: (data[f"sumsq/{batch}/{key}"] - k * means[key] ** 2) / (k - 1)
                    for key in keys
                }
                out[batch] = (k, means, variances)
        return out


def compare(twm_tf_path: str, original_path: str) -> dict:
    """Per batch and tensor: z, variance ratio and the means' relative gap; per model the range."""
    ours, theirs = _load(twm_tf_path), _load(original_path)
    if sorted(ours) != sorted(theirs):
        raise ValueError(f"batches differ: {sorted(ours)} against {sorted(theirs)}")
    tensors = {}
    for batch in sorted(ours):
        (k1, m1, v1), (k2, m2, v2) = ours[batch], theirs[batch]
        if sorted(m1) != sorted(m2):
            raise ValueError(f"batch {batch}: tensors differ: {sorted(set(m1) ^ set(m2))}")
        for key in sorted(m1):
            noise = np.sum(np.maximum(v1[key], 0)) / k1 + np.sum(np.maximum(v2[key], 0)) / k2
            gap = float(np.linalg.norm(m1[key] - m2[key]))
            tensors[f"{batch}/{key}"] = {
                "z": gap / float(np.sqrt(noise)) if noise > 0 else float("inf"),
                "variance_ratio": float(np.sum(v1[key]) / np.sum(v2[key])),
                "mean_relative_gap": gap / float(np.linalg.norm(m2[key]) + 1e-30),
                "draws": [k1, k2],
            }
    models = {}
    for name, entry in tensors.items():
        model = name.split("/")[1]
        stats = models.setdefault(model, {"z": [], "variance_ratio": []})
        stats["z"].append(entry["z"])
        stats["variance_ratio"].append(entry["variance_ratio"])
    summary = {
        model: {
            "tensors": len(s["z"]),
            "z_median": float(np.median(s["z"])),
            "z_max": float(np.max(s["z"])),
            "variance_ratio_median": float(np.median(s["variance_ratio"])),
            "variance_ratio_range": [
                float(np.min(s["variance_ratio"])),
                float(np.max(s["variance_ratio"])),
            ],
        }
        for model, s in models.items()
    }
    return {"summary": summary, "tensors": tensors}


def main():
    import argparse  # noqa: PLC0415 (the command line only)
    import json  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Compares grad_stats_tf's and _orig's moments.")
    parser.add_argument("--twm_tf", required=True, help="grad_stats_tf.py's output")
    parser.add_argument("--original", required=True, help="grad_stats_orig.py's output")
    parser.add_argument("--out", required=True, help="the .json file to write")
    args = parser.parse_args()
    report = compare(args.twm_tf, args.original)
    report["runs"] = {"twm_tf": args.twm_tf, "original": args.original}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    for model, entry in report["summary"].items():
        print(model, json.dumps(entry))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

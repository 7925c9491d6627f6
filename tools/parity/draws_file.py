"""The draws.npz format (NumPy only: the torch side reads it too); draws.py records the draws.

noise_<i>              float32 Gumbel noise of sample call i
restart_<i>            uint8 [n, S, 64, 64] observations of the i-th restarting step
mask_<i>_<kind>        dropout keep mask of call i, np.packbits-packed; kind is the site
mask_<i>_shape         its shape
"""

import numpy as np


def write(path: str, noise: list, masks: list, restart_frames: list) -> None:
    """Writes the draws; masks are (kind, bool array) pairs."""
    arrays = {f"noise_{i:03d}": x for i, x in enumerate(noise)}
    arrays.update({f"restart_{i:03d}": x for i, x in enumerate(restart_frames)})
    for i, (kind, mask) in enumerate(masks):
        arrays[f"mask_{i:03d}_{kind}"] = np.packbits(mask, axis=None)
        arrays[f"mask_{i:03d}_shape"] = np.array(mask.shape, np.int64)
    np.savez_compressed(path, **arrays)


def read(path: str) -> tuple[list, list, list]:
    """(noise arrays, (kind, bool mask) pairs, restart observations), each in call order."""
    with np.load(path) as data:
        data = {k: data[k] for k in data.files}
    noise = [data[k] for k in sorted(k for k in data if k.startswith("noise_"))]
    frames = [data[k] for k in sorted(k for k in data if k.startswith("restart_"))]
    masks = []
    for key in sorted(k for k in data if k.startswith("mask_") and not k.endswith("_shape")):
        _, index, kind = key.split("_", 2)
        shape = tuple(int(d) for d in data[f"mask_{index}_shape"])
        bits = np.unpackbits(data[key], count=int(np.prod(shape)))
        masks.append((kind, bits.astype(bool).reshape(shape)))
    return noise, masks, frames

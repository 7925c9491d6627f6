"""The replay buffer's save file: raw arrays under a JSON header, ending with their sha256.

    magic (16 bytes) | header length (8 bytes, little endian) | JSON header | arrays | sha256

The header holds the caller's fields plus the name, dtype and shape of each array. Writing is
atomic (files.atomic_write), so a crash mid-write leaves the previous file intact; reading checks
every byte against the digest before trusting the header, so a truncated or corrupted file is a
ValueError naming it, never a half-loaded buffer. At 100k steps a file is 412 MB.
"""

import hashlib
import json
import math

import numpy as np

from twm_tf import faults
from twm_tf import files

# Magic bytes of a save file; bump the version when the layout changes.
_MAGIC = b"TWM-TF REPLAY 1\n"
_DIGEST_BYTES = 32  # sha256


def write(path: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Writes `header` (JSON-serializable) and C-contiguous `arrays` to `path` atomically."""
    header = {**header, "arrays": []}
    chunks = []
    for name, array in arrays.items():
        header["arrays"].append([name, array.dtype.str, list(array.shape)])
        chunks.append(array.reshape(-1).view(np.uint8))  # Raw bytes, no copy.
    header_bytes = json.dumps(header, sort_keys=True).encode()
    digest = hashlib.sha256()
    with files.atomic_write(path, "wb") as f:
        for chunk in (_MAGIC, len(header_bytes).to_bytes(8, "little"), header_bytes, *chunks):
            f.write(chunk)
            digest.update(chunk)
            if chunk is header_bytes:
                faults.point("replay_write")
        f.write(digest.digest())


def read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads and verifies a file written by `write`: (header, arrays by name, read-only views).

    Raises:
        ValueError: naming `path`, if it is of another format, truncated or corrupted.
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not a replay file of this format (expected {_MAGIC!r} first)")
    view = memoryview(data)  # Slices of a memoryview do not copy the 400 MB.
    if hashlib.sha256(view[:-_DIGEST_BYTES]).digest() != bytes(view[-_DIGEST_BYTES:]):
        raise ValueError(
            f"replay file {path} is truncated or corrupted (its sha256 does not match); "
            "load an earlier save"
        )
    # Every byte is verified now, so the header can be trusted.
    offset = len(_MAGIC) + 8
    header_size = int.from_bytes(view[len(_MAGIC) : offset], "little")
    header = json.loads(bytes(view[offset : offset + header_size]))
    offset += header_size
    arrays = {}
    for name, dtype, shape in header.pop("arrays"):
        array = np.frombuffer(data, np.dtype(dtype), count=math.prod(shape), offset=offset)
        arrays[name] = array.reshape(shape)
        offset += array.nbytes
    return header, arrays

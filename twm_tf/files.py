"""Atomic file writes: a reader or a crash sees the old file or the new one, never a mix."""

import contextlib
import os


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs):
    """Writes `path` through a temporary file that replaces it only when the block succeeds.

    The data is flushed and fsynced before the rename (os.replace is atomic on POSIX), so after a
    crash or a full disk `path` holds either its previous contents or the complete new ones; an
    exception inside the block leaves `path` untouched and removes the temporary file.

        with files.atomic_write(path) as f:
            json.dump(summary, f)
    """
    tmp = f"{path}.tmp"
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise

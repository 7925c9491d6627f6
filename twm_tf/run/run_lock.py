"""One writer per run directory: an advisory lock that a killed process cannot leave stuck.

`hold(run_dir)` takes an exclusive `fcntl.flock` on `<run_dir>/.lock` for the life of a training
process. The kernel drops the lock when the process exits in any way (SIGKILL included), so a
crashed run never blocks its own resume; a second live trainer on the same directory is refused
with the first one's pid and host, which the lock file holds.
"""

import contextlib
import errno
import fcntl
import os
import socket

from twm_tf import errors


class RunDirLocked(errors.RunError, ValueError):
    """Another live process is training in this run directory."""


@contextlib.contextmanager
def hold(run_dir: str):
    """Holds the run directory's lock inside the `with` block; raises RunDirLocked if taken."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirLocked(
                f"{run_dir} is being trained by another process ({holder}); wait for it, stop "
                "it (Ctrl-C / SIGTERM saves and exits), or pick another --run_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # Closing releases the lock.

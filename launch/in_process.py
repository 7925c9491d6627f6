"""Runs command lines of one launch binary in this process, one after another (for tests).

    python -m launch.in_process SPEC.json

SPEC is {"binary": "train", "root": DIR, "rows": [[arg, ...], ...], "file_size_limit": BYTES or
null, "limited": [row index, ...]}. Each row runs as `python -m launch.<binary> <args>` would
(absl's app.run with the flags reset to their defaults, SystemExit's text on stderr and status 1),
but without a new interpreter importing TensorFlow again. Per row one JSON line goes to stdout:
{"status": int, "stderr": str, "changed": [paths under root added, removed or modified]}; the
row's own stdout is dropped. Rows in
`limited` run with RLIMIT_FSIZE at `file_size_limit`: every write past it fails with EFBIG, a full
disk for machines that cannot mount a small tmpfs.
"""

import contextlib
import importlib
import json
import os
import resource
import sys
import tempfile
import traceback

from absl import app
from absl import flags


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file under root, by path."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(path)
                files[path] = (info.st_size, info.st_mtime_ns)
    return files


@contextlib.contextmanager
def _file_size_limit(limit: int | None):
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _run(binary, args: list[str], limit: int | None) -> tuple[int, str]:
    """Runs one command line with its stdout and stderr captured; (status, stderr's text)."""
    flags.FLAGS.unparse_flags()
    sys.argv = [binary.__name__.rsplit(".", 1)[-1], *args]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        os.dup2(stdout.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
        try:
            with _file_size_limit(limit):
                app.run(binary.main, argv=sys.argv)
            status = 0
        except SystemExit as exit_:  # As the interpreter ends: None is 0, a text is printed and 1.
            status = 0 if exit_.code is None else exit_.code
            if not isinstance(status, int):
                print(status, file=sys.stderr)
                status = 1
        except BaseException:  # noqa: BLE001 (a traceback is what a row must not end in)
            traceback.print_exc()
            status = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        stderr.seek(0)
        return status, stderr.read().decode(errors="replace")


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    binary = importlib.import_module(f"launch.{spec['binary']}")
    out = os.fdopen(os.dup(1), "w")
    for index, args in enumerate(spec["rows"]):
        before = snapshot(spec["root"])
        limit = spec["file_size_limit"] if index in spec["limited"] else None
        status, text = _run(binary, args, limit)
        after = snapshot(spec["root"])
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        out.write(json.dumps({"status": status, "stderr": text, "changed": changed}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

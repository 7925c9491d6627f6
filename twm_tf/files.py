"""Files the binaries read and write: checked readers, atomic and staged writes, one error type.

Every file a binary reads (config.json, eval.json, evals.csv, an export's metadata) goes through
`read_json` / `read_csv`, and every output it writes through `atomic_write`, `output_dir` or
`output_file`. A problem with any of them is one `FileError` naming the path and what is expected,
which a binary prints as its one error line (launch.fail): never a traceback, never a silently
misread value, and never a user's file lost to a mistyped output flag or a full disk.
"""

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from twm_tf import errors

PNG_SOFTWARE = "twm-tf"  # The Software tag of the project's PNGs (matplotlib's savefig metadata).
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FileError(errors.RunError, ValueError):
    """A file or directory that a binary reads or writes cannot be used.

    The message names the path and what is wrong with it: missing, unreadable, empty, truncated,
    malformed, in the way of an output it must not overwrite, unwritable, or on a full disk.
    """


def reason(error: BaseException) -> str:
    """The first line of an OS or TensorFlow error, without its path (the caller names that)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(getattr(error, "message", None) or error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if hasattr(error, "op"):  # tf.errors.OpError: "{{function_node ...}} <path>; <reason> [Op:X]"
        text = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]$", "", text).rsplit("; ", 1)[-1]
    return text


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


# Reading.


def read_text(path: str, what: str) -> str:
    """The text of `path`, `what` naming it in errors (e.g. "the run's config").

    Raises:
      FileError: if it is missing, a directory, unreadable, not UTF-8 text or empty.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise FileError(f"cannot read {what} {path}: {reason(error)}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FileError(
            f"{what} {path} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    if not text.strip():
        raise FileError(f"{what} {path} is empty (a half-written file?)")
    return text


def read_json(
    path: str,
    what: str,
    fields: dict[str, type] | None = None,
    optional: dict[str, type] | None = None,
) -> Any:
    """The JSON value of `path`; with `fields`, an object holding each field with its type.

    Types are int (not bool), float (any finite number), str, list and dict; `optional` fields
    are checked when present. A missing field, one of another type or a non-object is an error.

    Raises:
      FileError: naming `path`, if it cannot be read or is not such JSON.
    """
    text = read_text(path, what)
    try:
        value = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError
        raise FileError(f"{what} {path} is not valid JSON ({error})") from None
    if fields is None and optional is None:
        return value
    if not isinstance(value, dict):
        raise FileError(f"{what} {path} holds a JSON {type(value).__name__}, not an object")
    checks = [(name, kind, True) for name, kind in (fields or {}).items()]
    checks += [(name, kind, False) for name, kind in (optional or {}).items()]
    for name, kind, required in checks:
        if name not in value:
            if required:
                raise FileError(f"{what} {path} has no field {name!r}")
        elif not _is(value[name], kind):
            raise FileError(f"{what} {path}: {name} must be {_KINDS[kind]}, got {value[name]!r}")
    return value


_KINDS = {
    int: "an int",
    float: "a finite number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def read_csv(
    path: str, what: str, columns: Sequence[tuple[str, type]], appended: bool = False
) -> list[tuple]:
    """The rows of a headerless CSV file whose columns are `columns` (name, int or float).

    A missing or empty file has no rows; blank lines are skipped; floats must be finite. A file
    that is `appended` to row by row may end in a row still being written or cut by a kill: that
    last row, which lacks its newline, is left out.

    Raises:
      FileError: naming `path` and the line, for a row of another length or a value that does
        not parse (a truncated or hand-edited file).
    """
    if not os.path.exists(path) or (os.path.isfile(path) and not os.path.getsize(path)):
        return []
    text = read_text(path, what)
    lines = text.splitlines()
    if appended and lines and not text.endswith("\n"):
        lines.pop()
    names = ", ".join(name for name, _ in columns)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != len(columns):
            raise FileError(
                f"{what} {path} line {number}: expected {len(columns)} values ({names}), "
                f"got {line!r}"
            )
        row = []
        for cell, (name, kind) in zip(cells, columns):
            try:
                value = kind(cell)
            except ValueError:
                value = None
            if value is None or (kind is float and not math.isfinite(value)):
                raise FileError(
                    f"{what} {path} line {number}: {name} must be {_KINDS[kind]}, got {cell!r}"
                )
            row.append(value)
        rows.append(tuple(row))
    return rows


# Writing outputs: never over a file that is not this binary's own earlier output.


def is_json_with(path: str, key: str) -> bool:
    """Whether `path` is a JSON object holding `key` (how a binary knows its earlier outputs)."""
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(value, dict) and key in value


def is_tagged_png(path: str) -> bool:
    """Whether `path` is a PNG written with metadata {"Software": PNG_SOFTWARE}."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(_PNG_MAGIC) and b"tEXtSoftware\x00" + PNG_SOFTWARE.encode() in head


def check_writable(directory: str, flag: str) -> None:
    """Refuses a directory that cannot be created or written in (FileError naming `flag`).

    Probes the nearest existing ancestor with a temporary directory, which it removes.
    """
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise FileError(f"{flag}: {existing} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".twm-probe-"))
    except OSError as error:
        raise FileError(f"{flag}: cannot write in {existing}: {reason(error)}") from None


def check_output_dir(path: str, flag: str, names: Sequence[str], own: Callable[[str], bool]):
    """Refuses an output directory that a binary writing `names` into it must not touch.

    Allowed: a missing directory that can be created, or a directory where none of `names`
    exists or which `own(path)` recognizes as this binary's earlier output.

    Raises:
      FileError: naming `flag`, if path is a file, holds another program's file of one of
        `names`, or cannot be written.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileError(f"{flag}={path} is a file, not a directory")
    if os.path.isdir(path):
        clash = [n for n in names if os.path.lexists(os.path.join(path, n))]
        if clash and not own(path):
            raise FileError(
                f"{flag}={path} holds {clash[0]}, which is not an earlier output of this "
                "binary; nothing was overwritten: pick another directory"
            )
    check_writable(path, flag)


@contextlib.contextmanager
def output_dir(
    path: str, flag: str, names: Sequence[str], own: Callable[[str], bool]
) -> Iterator[str]:
    """Yields an empty staging directory whose files are moved into `path` when the block succeeds.

    `path` is checked first (`check_output_dir`). A write that fails inside the block (a full
    disk) leaves `path` as it was and removes the staging directory and any parent this created.

        with files.output_dir(out, "--out", NAMES, own) as staging:
            write(..., staging)

    Raises:
      FileError: naming `flag`, for a refused path or a failed write.
    """
    check_output_dir(path, flag, names, own)
    path = os.path.abspath(path)
    created = _missing_ancestor(os.path.dirname(path))
    staging = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
        yield staging
        if not os.path.exists(path):
            os.rename(staging, path)
        else:
            for name in os.listdir(staging):
                os.replace(os.path.join(staging, name), os.path.join(path, name))
    except OSError as error:
        _remove(staging, created)
        raise FileError(
            f"writing {flag}={path} failed: {reason(error)}; nothing was changed"
        ) from None
    except BaseException:
        _remove(staging, created)
        raise
    _remove(staging, None)


@contextlib.contextmanager
def output_file(path: str, flag: str, own: Callable[[str], bool]) -> Iterator[str]:
    """Yields a temporary path (same extension) that replaces `path` when the block succeeds.

    An existing `path` is replaced only if `own(path)` recognizes it as this binary's output.

    Raises:
      FileError: naming `flag`, for a path in the way, an unwritable directory or a failed write.
    """
    if os.path.lexists(path) and not (os.path.isfile(path) and own(path)):
        kind = "a directory" if os.path.isdir(path) else "a file this binary did not write"
        raise FileError(f"{flag}={path} exists and is {kind}; nothing was overwritten")
    directory = os.path.dirname(os.path.abspath(path))
    check_writable(directory, flag)
    created = _missing_ancestor(directory)
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        stem, extension = os.path.splitext(os.path.basename(path))
        fd, tmp = tempfile.mkstemp(suffix=extension, prefix=f".{stem}.", dir=directory)
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp, created)
        raise FileError(
            f"writing {flag}={path} failed: {reason(error)}; nothing was changed"
        ) from None
    except BaseException:
        _remove(tmp, created)
        raise


class OutputDir:
    """A binary's output directory, checked when created and written staged at the end.

        out = files.OutputDir(flag_value, "--out", report_output.FILES, ("report.json", "games"))
        ... minutes of work ...
        with out.staged() as staging:
            report_output.write(data, staging)

    `marker` (file name, key) tells this binary's earlier output: that file is a JSON object
    with that key. See `check_output_dir` and `output_dir`; both raise FileError.
    """

    def __init__(self, path: str, flag: str, names: Sequence[str], marker: tuple[str, str]):
        self.path, self.flag, self.names, self._marker = path, flag, tuple(names), marker
        check_output_dir(path, flag, self.names, self._own)

    def _own(self, directory: str) -> bool:
        name, key = self._marker
        return is_json_with(os.path.join(directory, name), key)

    def staged(self):
        """The `output_dir` context of this directory: yields the staging directory."""
        return output_dir(self.path, self.flag, self.names, self._own)

    def final(self, staged_path: str) -> str:
        """Where a file written to the staging directory ends up."""
        return os.path.join(self.path, os.path.basename(staged_path))


def _missing_ancestor(directory: str) -> str | None:
    """The outermost directory of `directory`'s ancestry (itself included) that does not exist."""
    missing = None
    directory = os.path.abspath(directory)
    while not os.path.exists(directory):
        missing, directory = directory, os.path.dirname(directory)
    return missing


def _remove(path: str | None, created: str | None) -> None:
    for target in (path, created):
        if target is None or not os.path.lexists(target):
            continue
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(target)

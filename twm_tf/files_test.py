"""Tests of the checked readers and the atomic and staged writes."""

import errno
import json
import os

from absl.testing import absltest

from twm_tf import files
from twm_tf.dev import testing


class AtomicWriteTest(testing.TestCase):
    def test_replaces_the_file_when_the_block_succeeds(self):
        path = os.path.join(self.create_tempdir().full_path, "a.txt")
        for text in ("first", "second"):
            with files.atomic_write(path) as f:
                f.write(text)
            with open(path) as f:
                self.assertEqual(f.read(), text)
        self.assertFalse(os.path.exists(path + ".tmp"))

    def test_a_failing_block_keeps_the_old_file(self):
        path = os.path.join(self.create_tempdir().full_path, "a.bin")
        with files.atomic_write(path, "wb") as f:
            f.write(b"old")
        with self.assertRaisesRegex(OSError, "disk full"):
            with files.atomic_write(path, "wb") as f:
                f.write(b"new, half written")
                raise OSError("disk full")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertFalse(os.path.exists(path + ".tmp"))


def _write(path: str, data) -> str:
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def _tree(root: str) -> dict[str, bytes]:
    contents = {}
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                contents[os.path.relpath(os.path.join(directory, name), root)] = f.read()
    return contents


class ReadTest(testing.TestCase):
    def test_read_json_checks_fields(self):
        path = _write(os.path.join(self.create_tempdir().full_path, "e.json"), '{"mean": 1.5}')
        self.assertEqual(files.read_json(path, "eval", {"mean": float}), {"mean": 1.5})
        for text, message in (
            ('{"mean": "1.5"}', r"eval .*e.json: mean must be a finite number, got '1.5'"),
            ('{"mean": NaN}', "mean must be a finite number, got nan"),
            ('{"mean": true}', "mean must be a finite number, got True"),
            ("{}", "has no field 'mean'"),
            ("[1.5]", "holds a JSON list, not an object"),
            ('{"mean": 1.', r"is not valid JSON \(Expecting"),
            ("  \n", r"is empty \(a half-written file\?\)"),
        ):
            _write(path, text)
            with self.assertRaisesRegex(files.FileError, message):
                files.read_json(path, "eval", {"mean": float})
        _write(path, '{"mean": 1, "random_mean": null}')
        with self.assertRaisesRegex(files.FileError, "random_mean must be a finite number"):
            files.read_json(path, "eval", {"mean": float}, optional={"random_mean": float})

    def test_read_json_of_a_missing_path_or_a_directory(self):
        directory = self.create_tempdir().full_path
        for path in (os.path.join(directory, "nothing.json"), directory):
            with self.assertRaisesRegex(files.FileError, f"cannot read eval {path}: "):
                files.read_json(path, "eval")

    def test_read_csv_names_the_line(self):
        path = os.path.join(self.create_tempdir().full_path, "log.csv")
        columns = (("step", int), ("value", float))
        self.assertEqual(files.read_csv(path, "log", columns), [])  # Missing: no rows yet.
        _write(path, "1,0.5\r\n\r\n2,-1\r\n")
        self.assertEqual(files.read_csv(path, "log", columns), [(1, 0.5), (2, -1.0)])
        for text, message in (
            ("1,0.5\n2\n", r"log .*log.csv line 2: expected 2 values \(step, value\), got '2'"),
            ("1,0.5\n2.5,1\n", "line 2: step must be an int, got '2.5'"),
            ("1,inf\n", "line 1: value must be a finite number, got 'inf'"),
            (b"1,\xff\n", "is not UTF-8 text"),
        ):
            _write(path, text)
            with self.assertRaisesRegex(files.FileError, message):
                files.read_csv(path, "log", columns)

    def test_an_appended_csv_may_end_in_a_torn_row(self):
        path = _write(os.path.join(self.create_tempdir().full_path, "log.csv"), "1,0.5\n2,-")
        columns = (("step", int), ("value", float))
        self.assertEqual(files.read_csv(path, "log", columns, appended=True), [(1, 0.5)])
        with self.assertRaisesRegex(files.FileError, "line 2: value must be"):
            files.read_csv(path, "log", columns)


class OutputTest(testing.TestCase):
    _NAMES = ("out.json", "plot.png")
    _MARKER = ("out.json", "ours")

    def _output(self, path: str) -> files.OutputDir:
        return files.OutputDir(path, "--out", self._NAMES, self._MARKER)

    def test_a_new_directory_appears_whole(self):
        path = os.path.join(self.create_tempdir().full_path, "a", "out")
        out = self._output(path)
        with out.staged() as staging:
            _write(os.path.join(staging, "out.json"), '{"ours": 1}')
            self.assertFalse(os.path.exists(path))
        self.assertEqual(_tree(path), {"out.json": b'{"ours": 1}'})
        self.assertEqual(out.final(os.path.join(staging, "out.json")), f"{path}/out.json")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["out"])

    def test_an_earlier_output_is_replaced_and_other_files_kept(self):
        path = self.create_tempdir().full_path
        _write(os.path.join(path, "out.json"), '{"ours": 1}')
        _write(os.path.join(path, "notes.txt"), "a user's notes")
        with self._output(path).staged() as staging:
            _write(os.path.join(staging, "out.json"), '{"ours": 2}')
        self.assertEqual(_tree(path), {"out.json": b'{"ours": 2}', "notes.txt": b"a user's notes"})

    def test_refuses_what_it_did_not_write(self):
        root = self.create_tempdir().full_path
        theirs = os.path.join(root, "theirs")
        os.makedirs(theirs)
        _write(os.path.join(theirs, "plot.png"), "their plot")
        a_file = _write(os.path.join(root, "file"), "a file")
        for path, message in (
            (theirs, "holds plot.png, which is not an earlier output of this binary"),
            (a_file, "--out=.*file is a file, not a directory"),
            (os.path.join(a_file, "out"), "is a file, not a directory"),
            ("/proc/twm_out", "--out: cannot write in /proc"),
        ):
            with self.assertRaisesRegex(files.FileError, message):
                self._output(path)
        self.assertEqual(_tree(root), {"theirs/plot.png": b"their plot", "file": b"a file"})

    def test_a_full_disk_changes_nothing(self):
        root = self.create_tempdir().full_path
        path = os.path.join(root, "new", "out")
        earlier = os.path.join(root, "earlier")
        os.makedirs(earlier)
        _write(os.path.join(earlier, "out.json"), '{"ours": 1}')
        for target in (path, earlier):
            with self.assertRaisesRegex(
                files.FileError, "failed: No space left on device; nothing"
            ):
                with self._output(target).staged() as staging:
                    _write(os.path.join(staging, "out.json"), '{"ours": 2}')
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.assertEqual(_tree(root), {"earlier/out.json": b'{"ours": 1}'})
        self.assertEqual(sorted(os.listdir(root)), ["earlier"])  # No staging or parent left.

    def test_output_file_replaces_only_its_own(self):
        root = self.create_tempdir().full_path
        path = os.path.join(root, "plot.png")
        own = lambda p: open(p).read() == "ours"  # noqa: E731
        for _ in range(2):
            with files.output_file(path, "--out", own) as staging:
                self.assertTrue(staging.endswith(".png"))
                _write(staging, "ours")
        _write(path, "theirs")
        with self.assertRaisesRegex(files.FileError, "exists and is a file this binary did not"):
            with files.output_file(path, "--out", own):
                pass
        with self.assertRaisesRegex(files.FileError, "failed: No space left on device"):
            with files.output_file(os.path.join(root, "new.png"), "--out", own):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.assertEqual(_tree(root), {"plot.png": b"theirs"})

    def test_is_json_with_and_is_tagged_png(self):
        root = self.create_tempdir().full_path
        self.assertTrue(files.is_json_with(_write(f"{root}/a.json", '{"k": 0}'), "k"))
        self.assertFalse(files.is_json_with(_write(f"{root}/b.json", json.dumps([1])), "k"))
        self.assertFalse(files.is_json_with(f"{root}/missing.json", "k"))
        tag = b"tEXtSoftware\x00" + files.PNG_SOFTWARE.encode()
        self.assertTrue(files.is_tagged_png(_write(f"{root}/a.png", b"\x89PNG\r\n\x1a\n" + tag)))
        self.assertFalse(files.is_tagged_png(_write(f"{root}/b.png", b"\x89PNG\r\n\x1a\n")))


if __name__ == "__main__":
    absltest.main()

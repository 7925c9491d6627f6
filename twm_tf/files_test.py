"""Tests of atomic file writes."""

import os

from absl.testing import absltest

from twm_tf import files
from twm_tf import testing


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


if __name__ == "__main__":
    absltest.main()

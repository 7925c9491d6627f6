"""Counts Bazel's per-target test results in a `bazel test` log; prints `N passed, N failed`.

Exit status 1 when any target failed or no target ran (a build error leaves no result lines).
"""

import re
import sys

_RESULT = re.compile(
    r"^(//\S+)\s+(?:\(cached\)\s+)?"
    r"(PASSED|FLAKY|FAILED TO BUILD|FAILED|TIMEOUT|NO STATUS|INCOMPLETE)\b"
)


def count(lines) -> tuple[int, int]:
    """Returns (passed, failed) over Bazel's per-target result lines; FLAKY counts as passed."""
    passed = failed = 0
    for line in lines:
        match = _RESULT.match(line.strip())
        if match:
            if match.group(2) in ("PASSED", "FLAKY"):
                passed += 1
            else:
                failed += 1
    return passed, failed


def main(log_path: str) -> int:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        passed, failed = count(f)
    if passed + failed == 0:
        failed = 1  # A build error runs nothing, which must not read as success.
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

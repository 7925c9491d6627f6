"""RunError, the base of every error that names a bad input or a run that cannot go on.

The binaries print these as one line (`launch.one_line_errors`); anything else is a bug and keeps
its traceback. Each subclass also derives from the builtin its callers knew before (ValueError
for bad input, RuntimeError for a state reached at run time).
"""


class RunError(Exception):
    """A user-facing failure whose message names the file, flag or run and what is expected."""

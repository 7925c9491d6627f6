"""Ctrl-C and SIGTERM as a request to stop a run at its next step boundary."""

import signal
import sys
import threading
from collections.abc import Callable

import tqdm


def say(message: str) -> None:
    """The project's own console messages: above the progress bars, never hidden by --verbosity."""
    tqdm.tqdm.write(message, file=sys.stderr)


class StopRequest:
    """Turns SIGINT / SIGTERM into `requested = True`; a second signal aborts at once.

        with StopRequest(lambda: "finishing the step in flight") as stop:
            while not stop.requested:
                ...

    `waiting_for()` says what the stop waits for, in the message that acknowledges it. Outside
    the main thread (where Python cannot install signal handlers) it only ever reads False.
    """

    def __init__(self, waiting_for: Callable[[], str]):
        self.requested = False
        self._waiting_for = waiting_for
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del frame
        if self.requested:
            raise KeyboardInterrupt  # Second request: abort now, keep the last checkpoint.
        self.requested = True
        say(
            f"{signal.Signals(signum).name}: stopping; {self._waiting_for()}. Press Ctrl-C "
            "again (or send SIGTERM) to abort at once: the run then resumes from its last "
            "checkpoint."
        )

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

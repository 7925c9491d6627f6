"""Per-phase progress of a run: counts, measured rates, phase and overall time remaining.

A run has phases of very different speed (random prefill ~1,500 env steps/s, pretraining updates,
training at a few env steps/s, evaluation games), so one bar over env steps gives a meaningless
ETA. `Progress` keeps a count per phase, measures each phase's rate while it runs, and sums the
remaining work of every unfinished phase at its measured rate. A phase not yet run has no rate:
its time is not guessed, and `overall` names it instead.

    progress = Progress([("prefill", 5000), ("train", 95000)], clock=time.monotonic)
    progress.advance("prefill", 100)   # 100 more units done
    progress.eta("prefill"), progress.overall()
"""

import time
from collections.abc import Callable, Sequence


def format_seconds(seconds: float) -> str:
    """H:MM:SS, or D days H:MM:SS beyond a day."""
    seconds = max(0, round(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


class Progress:
    """Counts and rates of a run's phases, in their order."""

    # A rate is trusted after this many seconds of a phase in this process (the first calls of a
    # compiled step include tracing, which would make early rates far too slow).
    MIN_SECONDS = 20.0

    def __init__(
        self,
        phases: Sequence[tuple[str, int]],
        clock: Callable[[], float] = time.monotonic,
        done: dict[str, int] | None = None,
    ):
        """Args:
        phases: (name, total units) in run order.
        clock: seconds, monotonic (tests pass a fake).
        done: units already done per phase (a resumed run); missing phases start at 0.
        """
        self._clock = clock
        self._order = [name for name, _ in phases]
        self.totals = dict(phases)
        self.done = {name: (done or {}).get(name, 0) for name in self._order}
        self._start: dict[str, tuple[float, int]] = {}  # When this process began the phase.

    def advance(self, phase: str, units: int = 1) -> None:
        """Records `units` more units of `phase` done (the first call starts its clock)."""
        if phase not in self.totals:
            raise ValueError(f"unknown phase {phase!r}; phases: {self._order}")
        if phase not in self._start:
            self._start[phase] = (self._clock(), self.done[phase])
        self.done[phase] = min(self.totals[phase], self.done[phase] + units)

    def begin(self, phase: str) -> None:
        """Starts timing `phase` now, before its first unit is done."""
        self.advance(phase, 0)

    def rate(self, phase: str) -> float | None:
        """Units per second measured in this process, or None before MIN_SECONDS of it."""
        if phase not in self._start:
            return None
        started, done_then = self._start[phase]
        elapsed = self._clock() - started
        if elapsed < self.MIN_SECONDS or self.done[phase] == done_then:
            return None
        return (self.done[phase] - done_then) / elapsed

    def remaining(self, phase: str) -> int:
        return self.totals[phase] - self.done[phase]

    def eta(self, phase: str) -> float | None:
        """Seconds left in `phase` at its measured rate; 0 when done, None when unmeasured."""
        if not self.remaining(phase):
            return 0.0
        rate = self.rate(phase)
        return None if rate is None else self.remaining(phase) / rate

    def overall(self) -> tuple[float, list[str]]:
        """(seconds left in the measured unfinished phases, names of unmeasured ones)."""
        seconds, unknown = 0.0, []
        for phase in self._order:
            eta = self.eta(phase)
            if eta is None:
                unknown.append(phase)
            else:
                seconds += eta
        return seconds, unknown

    def summary(self) -> str:
        """The overall ETA in a few words: '1:02:03 left' or '>= 0:05:00 left + 2 untimed'.

        Phases count as untimed until they ran for MIN_SECONDS; `overall` names them.
        """
        seconds, unknown = self.overall()
        if not unknown:
            return f"{format_seconds(seconds)} left"
        return f">= {format_seconds(seconds)} left + {len(unknown)} untimed"

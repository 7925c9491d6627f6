"""Named crash points, so tests can SIGKILL a run at an exact place (launch/kill_anywhere.py).

    TWM_TF_KILL_AT=replay_write:3 python -m launch.train ...

kills the process with SIGKILL the 3rd time it passes `faults.point("replay_write")`. Without the
variable (always, outside those tests) a point is one comparison.
"""

import os
import signal

ENV_VAR = "TWM_TF_KILL_AT"

POINTS = (
    "prefill_step",  # After an env step of the random prefill (replay and counters advanced).
    "pretrain_update",  # After a pretraining update, before its counter.
    "train_step",  # Between the env step of a main-loop step and its train steps.
    "eval_game",  # After an evaluation game (interim or final).
    "replay_write",  # In the middle of writing a replay file.
    "checkpoint_write",  # After the replay file of a checkpoint, before the checkpoint itself.
    "after_checkpoint",  # After a checkpoint, before the replay files it outdates are removed.
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV_VAR} must be <point>:<n> with a point of {POINTS} and n >= 1")
    return name, int(count)


_TARGET = _parse(os.environ.get(ENV_VAR))
_passes = 0


def point(name: str) -> None:
    """Marks a crash point; SIGKILLs this process at the pass that TWM_TF_KILL_AT names."""
    global _passes
    if _TARGET is None or name != _TARGET[0]:
        return
    _passes += 1
    if _passes == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)

"""Checks of the steps given to ReplayBuffer.add_batch (shapes, dtypes, values) before storing."""

import numpy as np


def check_observations(obs: np.ndarray, *, frame_size: int, stack: int) -> None:
    """Raises a ValueError unless `obs` is [T, stack, H, W] or [T, H, W] uint8 of frame_size."""
    if obs.dtype != np.uint8:
        raise ValueError(f"obs_or_frames must be uint8 (raw pixels), got dtype {obs.dtype}")
    if obs.shape[1:] not in ((frame_size, frame_size), (stack, frame_size, frame_size)):
        raise ValueError(
            f"obs_or_frames must have shape [T, {stack}, {frame_size}, {frame_size}] (stacks) or "
            f"[T, {frame_size}, {frame_size}] (newest frames), got {list(obs.shape)}"
        )


def check_columns(columns: dict[str, np.ndarray], num: int) -> None:
    """Raises a ValueError unless every column is [num] and of its dtype and range.

    Args:
        columns: "actions" (non-negative int32 values), "rewards" (finite numbers), "terminated",
            "truncated" and "is_first" (bool).
        num: T, the steps appended.
    """
    for name, column in columns.items():
        if column.shape != (num,):
            raise ValueError(f"{name} must have shape [{num}], got {list(column.shape)}")
    for name in ("terminated", "truncated", "is_first"):
        if columns[name].dtype != bool:
            raise ValueError(f"{name} must be bool, got dtype {columns[name].dtype}")
    actions = columns["actions"]
    if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
    if num and (actions.min() < 0 or actions.max() > np.iinfo(np.int32).max):
        raise ValueError(f"actions must be non-negative int32 values, got {actions}")
    rewards = columns["rewards"]
    if not np.issubdtype(rewards.dtype, np.number) or not np.all(np.isfinite(rewards)):
        raise ValueError(f"rewards must be finite numbers, got {rewards}")

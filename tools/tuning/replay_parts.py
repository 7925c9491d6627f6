"""Parts of a replay file's steps as replay buffers of their own, for the probes."""

from twm_tf.replay import buffer as replay_lib


def part_buffer(header: dict, arrays: dict, lo: int, hi: int, seed: int) -> replay_lib.ReplayBuffer:
    """Steps [lo, hi) of a replay file's arrays in a buffer of their own."""
    buffer = replay_lib.ReplayBuffer(
        capacity=hi - lo,
        frame_size=header["frame_size"],
        stack=header["stack"],
        tau=float("inf"),
        seed=seed,
    )
    is_first = arrays["is_first"][lo:hi].copy()
    is_first[0] = True  # The part's first observation cannot stack frames from before it.
    buffer.add_batch(
        obs_or_frames=arrays["frames"][lo:hi],
        **{k: arrays[k][lo:hi] for k in ("actions", "rewards", "terminated", "truncated")},
        is_first=is_first,
    )
    return buffer

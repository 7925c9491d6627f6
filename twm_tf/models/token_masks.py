"""Attention masks over the dynamics model's interleaved tokens (layout in models/dynamics.py)."""

import numpy as np
import tensorflow as tf


def episode_ids(dones: tf.Tensor) -> tf.Tensor:
    """[B, T] number of dones before each step: equal ids <=> no episode boundary in between."""
    return tf.cumsum(tf.cast(dones, tf.int32), axis=1, exclusive=True)


def window_mask(dones: tf.Tensor, memory_steps: int, tokens_per_step: int) -> tf.Tensor:
    """Attention mask of a window's tokens.

    Args:
      dones: [B, T] bool, True where transition t ended the episode.
      memory_steps: a token of step s sees steps s - memory_steps .. s.
      tokens_per_step: K.

    Returns:
      [B, N, N] bool, True where query token i may attend key token j.
    """
    steps = tf.shape(dones)[1]
    n = steps * tokens_per_step - (tokens_per_step - 2)
    index = tf.range(n)
    step = index // tokens_per_step  # [N]
    causal = index[:, None] >= index[None, :]
    span = step[:, None] - step[None, :] <= memory_steps
    episode = tf.gather(episode_ids(dones), step, axis=1)  # [B, N]
    same_episode = episode[:, :, None] == episode[:, None, :]  # [B, N, N]
    return (causal & span)[None] & same_episode


def step_mask(
    valid: tf.Tensor, reset: tf.Tensor, num_blocks: int, memory_steps: int, tokens_per_step: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Which keys the K new tokens [r_{t-1}, z_t, a_t] of `DynamicsModel.step` may attend.

    Args:
      valid: [B, L] bool, the cache's slots that hold a token of the current episode
        (L = K num_blocks).
      reset: [B] bool, step t starts an episode or a rollout: it sees nothing from the cache.
      num_blocks: n, the cache's blocks.
      memory_steps: a token of step s sees steps s - memory_steps .. s.
      tokens_per_step: K.

    Returns:
      (mask, keep, new_valid): mask [B, K, L + K] bool, True where new token q may attend key j
      (the cache's slots, then the new tokens); keep [B, L], the cache's slots still valid;
      new_valid [B, K], the new tokens' validity.
    """
    k = tokens_per_step
    length = k * num_blocks
    keep = valid & ~reset[:, None]  # [B, L]
    batch = tf.shape(reset)[0]
    new_valid = tf.concat(
        [tf.tile(~reset[:, None], [1, k - 2]), tf.ones([batch, 2], tf.bool)], axis=1
    )  # [B, K]: a reset drops r_{t-1} (it belongs to the ended episode), never z_t or a_t
    key_valid = tf.concat([keep, new_valid], axis=1)  # [B, L + K]
    structure = tf.constant(_step_structure(num_blocks, memory_steps, k))
    mask = structure[None] & key_valid[:, None]  # [B, K, L + K]
    # Every token sees itself, so even a dropped r_{t-1} has a finite softmax.
    mask |= tf.constant(np.eye(k, length + k, length, dtype=bool))[None]
    return mask, keep, new_valid


def _step_structure(blocks: int, memory_steps: int, k: int) -> np.ndarray:
    """[K, L + K] bool, L = K blocks: which keys each new token may see, before validity."""
    # The step of every slot and new token relative to t, block by block ([r_{s-1},] z_s, a_s).
    block_steps = np.arange(-blocks, 1)
    steps = np.stack([block_steps - 1] * (k - 2) + [block_steps] * 2, axis=1).reshape(-1)
    query_steps = steps[-k:, None]
    causal = np.arange(len(steps))[None, :] <= np.arange(k * blocks, len(steps))[:, None]
    return causal & (query_steps - steps[None, :] <= memory_steps)

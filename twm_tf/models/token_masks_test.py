"""Tests of the attention masks against their definitions."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.models import token_masks


def _reference_mask(dones, memory_steps, k):
    """window_mask from its definition: causal, within the span, no done in between."""
    batch, steps = dones.shape
    n = steps * k - (k - 2)
    mask = np.zeros([batch, n, n], bool)
    for b in range(batch):
        for i in range(n):
            for j in range(i + 1):
                si, sj = i // k, j // k
                mask[b, i, j] = si - sj <= memory_steps and not dones[b, sj:si].any()
    return mask


class TokenMasksTest(testing.TestCase):
    def test_episode_ids_count_the_dones_before_each_step(self):
        dones = tf.constant([[False, True, False, True, True]])
        self.assertAllEqual(token_masks.episode_ids(dones), [[0, 0, 1, 1, 2]])

    @parameterized.parameters((3, 1, 0.3), (2, 4, 0.2), (3, 2, 0.0))
    def test_window_mask_matches_definition(self, k, memory_steps, done_prob):
        dones = np.random.default_rng(0).random([3, 7]) < done_prob
        mask = token_masks.window_mask(tf.constant(dones), memory_steps, k)
        self.assertAllEqual(mask, _reference_mask(dones, memory_steps, k))

    @parameterized.parameters((3, 1), (3, 4), (2, 3))
    def test_step_mask_of_a_full_cache_is_the_last_rows_of_a_window(self, k, memory_steps):
        # A full cache's blocks [r_{s-1},] z_s, a_s and the new block are the tokens of a window
        # of blocks + 1 steps, after an r_{t-1-n} that no new token sees any more.
        blocks = memory_steps + k - 2
        valid = tf.ones([2, k * blocks], tf.bool)
        mask, keep, new_valid = token_masks.step_mask(
            valid, tf.zeros([2], tf.bool), blocks, memory_steps, k
        )
        window = token_masks.window_mask(tf.zeros([2, blocks + 1], tf.bool), memory_steps, k)
        self.assertAllEqual(mask[:, :, k - 2 :], window[:, -k:])
        self.assertAllEqual(mask[:, :, : k - 2], tf.zeros([2, k, k - 2], tf.bool))
        self.assertAllEqual(keep, valid)
        self.assertAllEqual(new_valid, tf.ones([2, k], tf.bool))

    def test_step_mask_after_a_reset_sees_only_the_new_step(self):
        blocks, length = 2, 6
        mask, keep, new_valid = token_masks.step_mask(
            tf.ones([1, length], tf.bool), tf.constant([True]), blocks, 2, 3
        )
        self.assertAllEqual(keep, tf.zeros([1, length], tf.bool))
        self.assertAllEqual(new_valid, [[False, True, True]])  # r_{t-1} is of the ended episode
        self.assertAllEqual(mask[0, :, :length], tf.zeros([3, length], tf.bool))
        # r_{t-1} sees itself only (a finite softmax); z_t sees itself, a_t sees z_t and itself.
        self.assertAllEqual(mask[0, :, length:], np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]], bool))


if __name__ == "__main__":
    absltest.main()

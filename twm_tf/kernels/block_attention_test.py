"""The fused attention kernel against a NumPy reference and against the TensorFlow ops."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import testing
from twm_tf.kernels import block_attention
from twm_tf.models import transformer_xl


def _reference(query, u, v, relative, mask, keys, values, scale):
    """Loops over every query and key: score = ((q + u) . k_j + (q + v) . r(dist)) * scale."""
    keys, values = np.concatenate(keys, axis=2), np.concatenate(values, axis=2)
    heads, batch, queries, depth = query.shape
    length = keys.shape[2]
    out = np.zeros([batch, queries, heads, depth], np.float64)
    for h in range(heads):
        for b in range(batch):
            for i in range(queries):
                scores = np.full(length, -np.inf)
                for j in range(length):
                    distance = length - queries + i - j
                    if mask[b, i, j] and distance >= 0:
                        row = relative[length - 1 - distance, h]
                        content = (query[h, b, i] + u[h]) @ keys[h, b, j]
                        scores[j] = (content + (query[h, b, i] + v[h]) @ row) * scale
                weights = np.exp(scores - scores.max())
                out[b, i, h] = weights @ values[h, b] / weights.sum()
    return out


class BlockAttentionTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(
            block_attention.available(tf.float32),
            "the kernel is not built: run ./setup.sh or python -m twm_tf.kernels.block_attention",
        )

    @parameterized.parameters((1, [3]), (3, [3, 3, 3]), (1, [2, 4, 1, 3]), (3, [5]))
    def test_equals_reference(self, queries, block_sizes):
        rng = np.random.default_rng(len(block_sizes))
        heads, batch, depth = 2, 3, 8
        length = sum(block_sizes)
        query = rng.standard_normal([heads, batch, queries, depth]).astype(np.float32)
        u, v = rng.standard_normal([2, heads, depth]).astype(np.float32)
        relative = rng.standard_normal([length, heads, depth]).astype(np.float32)
        mask = rng.random([batch, queries, length]) < 0.6
        mask[:, np.arange(queries), length - queries + np.arange(queries)] = True  # itself
        keys = [
            rng.standard_normal([heads, batch, k, depth]).astype(np.float32) for k in block_sizes
        ]
        values = [rng.standard_normal(x.shape).astype(np.float32) for x in keys]
        out = block_attention.attend(query, u, v, relative, mask, keys, values, 0.3)
        expected = _reference(query, u, v, relative, mask, keys, values, 0.3)
        self.assertAllClose(out, expected, atol=1e-6, rtol=0)  # float32 round-off: ~2.5e-7

    def test_layer_output_equals_the_tensorflow_ops(self):
        # A step as imagination runs it: 3 new tokens over 4 cached blocks, the last layer
        # querying only its last token; a few keys masked as after an episode end.
        layer = transformer_xl.RelativeMultiHeadAttention(width=16, heads=2, dropout=0.0)
        layer.build()
        rng = np.random.default_rng(0)
        batch, new, blocks = 5, 3, 4
        length = new * (blocks + 1)
        x = tf.constant(rng.standard_normal([batch, new, 16]), tf.float32)
        u, v = (tf.constant(rng.standard_normal([2, 8]), tf.float32) for _ in range(2))
        memory = tuple(
            [tf.constant(rng.standard_normal([2, batch, new, 8]), tf.float32)] * blocks
            for _ in range(2)
        )
        causal = np.arange(length)[None] <= np.arange(length - new, length)[:, None]
        mask = np.broadcast_to(causal, [batch, new, length]).copy()
        mask[0, :, :5] = False
        encoding = transformer_xl.sinusoidal_encoding(length, 16)
        for queries in (None, 1):
            args = (x, encoding, u, v, tf.constant(mask), memory)
            fused = layer(*args, queries=queries, fused=True)
            plain = layer(*args, queries=queries)
            self.assertIsNone(fused.weights)
            self.assertAllClose(fused.output, plain.output, atol=1e-5)
            self.assertAllEqual(fused.keys, plain.keys)

    def test_rejects_mismatched_blocks(self):
        query = tf.zeros([2, 3, 1, 8])
        bias = tf.zeros([2, 8])
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "block 1 must be"):
            block_attention.attend(
                query,
                bias,
                bias,
                tf.zeros([5, 2, 8]),
                tf.ones([3, 1, 5], tf.bool),
                [tf.zeros([2, 3, 3, 8]), tf.zeros([2, 4, 2, 8])],
                [tf.zeros([2, 3, 3, 8]), tf.zeros([2, 4, 2, 8])],
                1.0,
            )


if __name__ == "__main__":
    absltest.main()

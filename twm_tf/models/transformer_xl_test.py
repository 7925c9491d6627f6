"""Tests of the Transformer-XL layers against explicit NumPy formulas."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.models import transformer_xl


def _reference_attention(layer, x, u, v, mask):
    """score(i, j) = [(q_i + u) k_j + (q_i + v) W_r R(i - j)] / sqrt(D), one (i, j) at a time."""
    batch, length, width = x.shape
    heads, head_dim = layer.heads, layer.head_dim
    qkv = x @ layer.qkv.kernel.numpy()
    q, k, val = np.split(qkv.reshape(batch, length, 3, heads, head_dim), 3, axis=2)
    q, k, val = q[:, :, 0], k[:, :, 0], val[:, :, 0]  # [B, T, heads, head_dim]
    # Row d of sinusoidal_encoding(length) encodes distance length - 1 - d.
    encodings = transformer_xl.sinusoidal_encoding(length, width).numpy()[::-1]
    r = (encodings @ layer.position.kernel.numpy()).reshape(length, heads, head_dim)
    scores = np.full([batch, heads, length, length], -np.inf)
    for b in range(batch):
        for h in range(heads):
            for i in range(length):
                for j in range(i + 1):
                    if mask[b, i, j]:
                        content = (q[b, i, h] + u[h]) @ k[b, j, h]
                        position = (q[b, i, h] + v[h]) @ r[i - j, h]
                        scores[b, h, i, j] = (content + position) / math.sqrt(width)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = np.einsum("bhij,bjhd->bihd", weights, val).reshape(batch, length, width)
    return context @ layer.out.kernel.numpy(), weights


def _causal_mask(batch, length, rng):
    mask = np.tril(np.ones([length, length], bool))[None].repeat(batch, 0)
    mask &= rng.random([batch, length, length]) < 0.7  # random holes on top of causality
    mask |= np.eye(length, dtype=bool)[None]
    return mask


class RelativeShiftTest(testing.TestCase):
    @parameterized.parameters((5, 5), (3, 8), (1, 6))
    def test_equals_gather_on_causal_part(self, queries, keys):
        scores = np.random.randn(2, 3, queries, keys).astype(np.float32)
        shifted = transformer_xl.relative_shift(tf.constant(scores)).numpy()
        for i in range(queries):
            for j in range(keys - queries + i + 1):
                distance = keys - queries + i - j
                column = keys - 1 - distance
                self.assertAllEqual(shifted[:, :, i, j], scores[:, :, i, column])


class SinusoidalEncodingTest(testing.TestCase):
    def test_rows_are_descending_distances(self):
        encoding = transformer_xl.sinusoidal_encoding(4, 6).numpy()
        self.assertEqual(encoding.shape, (4, 6))
        self.assertAllClose(encoding[-1], [0, 1, 0, 1, 0, 1])  # distance 0
        self.assertAllClose(encoding[0, :2], [math.sin(3), math.cos(3)])  # distance 3
        frequency = 10_000 ** (-4 / 6)  # of the third sin/cos pair
        self.assertAllClose(encoding[0, 4:], [math.sin(3 * frequency), math.cos(3 * frequency)])


class RelativeMultiHeadAttentionTest(testing.TestCase):
    # training=True projects q, k, v by another path (a 2-D matmul and a transpose).
    @parameterized.parameters(
        (1, 1, False), (2, 2, False), (3, 4, False), (2, 2, True), (3, 4, True)
    )
    def test_matches_reference(self, batch, heads, training):
        width, length = 8, 6
        rng = np.random.default_rng(0)
        layer = transformer_xl.RelativeMultiHeadAttention(width, heads, dropout=0.0)
        layer.build()
        x = rng.standard_normal([batch, length, width]).astype(np.float32)
        u, v = rng.standard_normal([2, heads, width // heads]).astype(np.float32)
        mask = _causal_mask(batch, length, rng)
        encoding = transformer_xl.sinusoidal_encoding(length, width)
        out = layer(x, encoding, u, v, tf.constant(mask), training=training)
        expected_out, expected_weights = _reference_attention(layer, x, u, v, mask)
        self.assertAllClose(out.weights, expected_weights, atol=1e-5)
        self.assertAllClose(out.output, expected_out, atol=1e-5)
        masked = np.broadcast_to(~mask[:, None], out.weights.shape)
        self.assertAllEqual(out.weights.numpy()[masked], np.zeros(masked.sum()))

    def test_memory_of_projected_keys_equals_full_sequence(self):
        width, heads, length, new = 8, 2, 7, 3
        rng = np.random.default_rng(1)
        layer = transformer_xl.RelativeMultiHeadAttention(width, heads, dropout=0.0)
        layer.build()
        x = rng.standard_normal([2, length, width]).astype(np.float32)
        u, v = rng.standard_normal([2, heads, width // heads]).astype(np.float32)
        mask = tf.constant(_causal_mask(2, length, rng))
        encoding = transformer_xl.sinusoidal_encoding(length, width)
        full = layer(x, encoding, u, v, mask)
        old = layer(x[:, :-new], encoding[new:], u, v, mask[:, :-new, :-new])
        for sizes in ([4], [1, 3], [2, 1, 1]):  # the memory in one or several parts
            memory = (tf.split(old.keys, sizes, axis=2), tf.split(old.values, sizes, axis=2))
            part = layer(x[:, -new:], encoding, u, v, mask[:, -new:], memory=memory)
            self.assertAllClose(part.output, full.output[:, -new:], atol=1e-5)
            self.assertAllClose(part.weights, full.weights[:, :, -new:], atol=1e-6)


class TransformerXLTest(testing.TestCase):
    def test_shapes_and_shared_biases(self):
        stack = transformer_xl.TransformerXL(3, width=8, heads=2, ffn=16, dropout=0.1)
        stack.build()
        # Per block: qkv, position, out, 2 norms x 2, ffn 2 x 2 = 11; plus u and v once.
        self.assertLen(stack.trainable_variables, 3 * 11 + 2)
        x = tf.random.normal([2, 5, 8])
        mask = tf.constant(_causal_mask(2, 5, np.random.default_rng(0)))
        out = stack(x, mask, training=True)
        self.assertEqual(out.hidden.shape, (2, 5, 8))
        self.assertLen(out.attention, 3)
        self.assertEqual(out.attention[0].shape, (2, 2, 5, 5))
        self.assertEqual(out.keys[2].shape, (2, 2, 5, 4))

    def test_last_outputs_only_match_the_full_stack(self):
        stack = transformer_xl.TransformerXL(3, width=8, heads=2, ffn=16, dropout=0.0)
        stack.build()
        rng = np.random.default_rng(2)
        x = tf.constant(rng.standard_normal([2, 6, 8]), tf.float32)
        mask = tf.constant(_causal_mask(2, 6, rng))
        full = stack(x, mask)
        last = stack(x, mask, outputs=2)
        self.assertEqual(last.hidden.shape, (2, 2, 8))
        self.assertAllClose(last.hidden, full.hidden[:, -2:], atol=1e-6)
        # Every token still yields its keys and values, the last layer's included.
        for got, expected in zip((*last.keys, *last.values), (*full.keys, *full.values)):
            self.assertAllClose(got, expected, atol=1e-6)
        self.assertAllClose(last.attention[-1], full.attention[-1][:, :, -2:], atol=1e-6)
        self.assertAllClose(last.attention[0], full.attention[0], atol=1e-6)


if __name__ == "__main__":
    absltest.main()

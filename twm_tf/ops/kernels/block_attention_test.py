"""The fused attention kernel against a NumPy reference and against the TensorFlow ops."""

import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf.dev import testing
from twm_tf.models import transformer_xl
from twm_tf.ops.kernels import block_attention


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


def _problem(queries, block_sizes):
    """Random float32 query, u, v, relative, mask, key blocks and value blocks of one call."""
    rng = np.random.default_rng(len(block_sizes))
    heads, batch, depth = 2, 3, 20  # 20: full vectors and a remainder, for 8 or 16 lanes
    length = sum(block_sizes)
    query = rng.standard_normal([heads, batch, queries, depth]).astype(np.float32)
    u, v = rng.standard_normal([2, heads, depth]).astype(np.float32)
    relative = rng.standard_normal([length, heads, depth]).astype(np.float32)
    mask = rng.random([batch, queries, length]) < 0.6
    mask[:, np.arange(queries), length - queries + np.arange(queries)] = True  # itself
    keys = [rng.standard_normal([heads, batch, k, depth]).astype(np.float32) for k in block_sizes]
    values = [rng.standard_normal(x.shape).astype(np.float32) for x in keys]
    return query, u, v, relative, mask, keys, values


def _symbols(library: str) -> str:
    return subprocess.run(["nm", "-C", library], capture_output=True, text=True, check=True).stdout


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


class BlockAttentionTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(
            block_attention.available(tf.float32),
            "the kernel is not built: run ./setup.sh or "
            "python -m twm_tf.ops.kernels.block_attention",
        )

    @parameterized.parameters((1, [3]), (3, [3, 3, 3]), (1, [2, 4, 1, 3]), (3, [5]))
    def test_equals_reference(self, queries, block_sizes):
        inputs = _problem(queries, block_sizes)
        out = block_attention.attend(*inputs, 0.3)
        expected = _reference(*inputs, 0.3)
        self.assertAllClose(out, expected, atol=1e-6, rtol=0)  # float32 round-off: ~2.5e-7

    @parameterized.parameters("haswell", "x86-64")
    def test_every_cpu_target_equals_reference(self, march):
        # This CPU runs the library's best clone; the AVX2 and baseline clones are built alone
        # and run in a child process (the op name can be registered once per process).
        if platform.machine() != "x86_64":
            self.skipTest("the clones and -march targets are x86-64 ones")
        if march == "haswell" and not {"avx2", "fma"} <= _cpu_flags():
            self.skipTest("this CPU has no AVX2 + FMA")
        directory = self.create_tempdir().full_path
        library = block_attention.build(os.path.join(directory, "attention.so"), march=march)
        # The default build dispatches between clones; this one must hold its target alone.
        self.assertIn("[clone .arch_", _symbols(block_attention.LIBRARY))
        self.assertNotIn("[clone .arch_", _symbols(library))
        inputs = _problem(3, [2, 4, 1, 3])
        arrays = os.path.join(directory, "arrays.npz")
        np.savez(arrays, *inputs[:5], *inputs[5], *inputs[6])
        child = textwrap.dedent(f"""
            import numpy as np, tensorflow as tf
            a = np.load({arrays!r}); a = [a[f"arr_{{i}}"] for i in range(len(a.files))]
            n = (len(a) - 5) // 2
            out = tf.load_op_library({library!r}).twm_block_attention(
                *a[:5], a[5:5 + n], a[5 + n:], scale=0.3)
            np.save({arrays!r} + ".out.npy", out.numpy())
        """)
        subprocess.run([sys.executable, "-c", child], check=True)
        out = np.load(arrays + ".out.npy")
        self.assertAllClose(out, _reference(*inputs, 0.3), atol=1e-6, rtol=0)

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

    def test_a_library_that_does_not_load_is_skipped_with_a_warning(self):
        stale = self.create_tempfile("stale.so", content="built for another TensorFlow")
        with self.assertLogs(level="WARNING") as logs:
            self.assertIsNone(block_attention.load(stale.full_path))
        self.assertRegex(logs.output[0], "stale.so.*Rebuild it with ./setup.sh")

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

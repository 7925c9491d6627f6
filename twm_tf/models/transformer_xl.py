"""Transformer-XL layers (Dai et al. 2019): relative attention over cached projected keys."""

import math
from collections.abc import Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf.models import initializers
from twm_tf.ops import activations
from twm_tf.ops import dropout as dropout_lib
from twm_tf.ops import layer_norm
from twm_tf.ops.kernels import block_attention

# Projected keys and values of M earlier tokens as consecutive parts, oldest first:
# (key parts, value parts), each part [heads, B, M_i, head_dim] with sum M_i = M. Heads lead, so
# that imagination's step projects new tokens straight into this layout (no transposes).
LayerMemory = tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]]


class AttentionOutput(NamedTuple):
    """What one attention layer returns; keys/values are the new tokens' projections to cache."""

    output: tf.Tensor  # [B, Tq, D]
    weights: tf.Tensor | None  # [B, heads, Tq, Tk], before dropout; None from the fused kernel
    keys: tf.Tensor  # [heads, B, Tq, head_dim]
    values: tf.Tensor  # [heads, B, Tq, head_dim]


class TransformerXLOutput(NamedTuple):
    hidden: tf.Tensor  # [B, Tq, D] output of the last block
    attention: tuple[tf.Tensor | None, ...]  # per layer [B, heads, Tq, Tk] (None if fused)
    keys: tuple[tf.Tensor, ...]  # per layer [heads, B, Tq, head_dim]
    values: tuple[tf.Tensor, ...]  # per layer [heads, B, Tq, head_dim]


def sinusoidal_encoding(length: tf.Tensor, width: int) -> tf.Tensor:
    """Sinusoids of the distances length - 1, ..., 1, 0 (descending, the key order).

    Args:
      length: number of distances Tk (scalar int).
      width: encoding size D (even).

    Returns:
      [Tk, D] float32; row c encodes distance Tk - 1 - c with sin/cos pairs interleaved.
    """
    distances = tf.cast(tf.range(length - 1, -1, -1), tf.float32)  # [Tk]
    frequencies = tf.exp(tf.range(0, width, 2, dtype=tf.float32) * (-math.log(10_000.0) / width))
    angles = distances[:, None] * frequencies[None, :]  # [Tk, D / 2]
    return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), [length, width])


def relative_shift(scores: tf.Tensor) -> tf.Tensor:
    """Moves position scores from distance order to key order (Transformer-XL appendix B).

    The Tq queries are the last Tq of the Tk keys, so query i sits at key index Tk - Tq + i.

    Args:
      scores: [heads, B, Tq, Tk] (any two leading dims), scores[..., i, c] = query i against
        distance Tk - 1 - c.

    Returns:
      The same shape, entry [..., i, j] = query i against distance Tk - Tq + i - j. Exact for every
      key j <= Tk - Tq + i (the causal part); entries above it are leftovers that must be masked.
    """
    lead_0, lead_1, queries, keys = tf.unstack(tf.shape(scores))
    # A zero column in front, then reading the padded rows with one fewer column, slides row i
    # left by Tq - 1 - i: the pad+reshape form of the gather scores[i, j + Tq - 1 - i].
    padded = tf.pad(scores, [[0, 0], [0, 0], [0, 0], [1, 0]])  # [.., Tq, Tk + 1]
    padded = tf.reshape(padded, [lead_0, lead_1, keys + 1, queries])
    return tf.reshape(padded[:, :, 1:], [lead_0, lead_1, queries, keys])


def _projection(units: int, name: str) -> keras.layers.Dense:
    """A bias-free projection with nn.Linear's default weights."""
    return keras.layers.Dense(
        units, use_bias=False, kernel_initializer=initializers.torch_default_kernel(), name=name
    )


class RelativeMultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with relative position scores and projected-key caching.

    score(i, j) = [(q_i + u) . k_j + (q_i + v) . W_r R(i - j)] / sqrt(D), where R is a sinusoid of
    the distance, W_r this layer's projection and u, v the global biases of the whole stack.
    Projections have no bias and nn.Linear's default weights, U(+-1 / sqrt(D)). Keys and values
    of earlier tokens come in already projected, so a call costs projections of the new tokens only.
    """

    def __init__(self, width: int, heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"width={width} must be divisible by heads={heads}")
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        # The paper scales by the model width, not the head size.
        self.scale = 1.0 / math.sqrt(width)
        self.qkv = _projection(3 * width, "qkv")
        self.position = _projection(width, "position")
        self.out = _projection(width, "out")
        self.dropout = dropout_lib.Dropout(dropout, name="dropout")

    def build(self, input_shape=None):
        self.qkv.build((None, self.width))
        self.position.build((None, self.width))
        self.out.build((None, self.width))

    def _project_heads(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """[B, T, D] -> q, k, v head-major: [3 heads, B, T, head_dim]."""
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        shape = [3 * self.heads, self.head_dim]
        if training:
            # Under a gradient one 2-D matmul and a transpose: the input's gradient of the
            # broadcast form below would be a sum over a [3 heads, B T, D] tensor.
            qkv = tf.reshape(self.qkv(x), tf.concat([[batch, length], shape], 0))
            return tf.transpose(qkv, [2, 0, 1, 3])
        # Per-head kernels in one broadcast batched matmul write the head-major layout directly,
        # without transposes (docs/benchmarks.md has the timings).
        kernel = tf.reshape(tf.cast(self.qkv.kernel, x.dtype), [self.width, *shape])
        kernel = tf.transpose(kernel, [1, 0, 2])  # [3 heads, D, head_dim]
        qkv = tf.matmul(tf.reshape(x, [1, -1, self.width]), kernel)  # [3 heads, B T, head_dim]
        return tf.reshape(qkv, [3 * self.heads, batch, length, self.head_dim])

    def call(
        self,
        x: tf.Tensor,
        position_encoding: tf.Tensor,
        content_bias: tf.Tensor,
        position_bias: tf.Tensor,
        mask: tf.Tensor,
        memory: LayerMemory | None = None,
        training: bool = False,
        queries: int | None = None,
        fused: bool = False,
    ) -> AttentionOutput:
        """Attends the Tq new tokens over the M cached and the Tq new keys (Tk = M + Tq).

        Args:
          x: [B, Tq, D] new tokens.
          position_encoding: [Tk, D] from `sinusoidal_encoding(Tk, D)`.
          content_bias: u, [heads, head_dim].
          position_bias: v, [heads, head_dim].
          mask: [B, Tq, Tk] bool, True where query i may attend key j; every query must be
            allowed at least one key (its own).
          memory: cached keys and values of the M preceding tokens, as parts (see LayerMemory),
            or None (M = 0).
          training: applies dropout to the attention weights.
          queries: if set, only the last `queries` tokens query (Tq' = queries); every new token
            is still projected to a key and value. Output and weights then cover those queries.
          fused: outside training, attend with kernels/block_attention where it runs (built,
            float32, no GPU, no XLA), reading the cached parts in place; weights are then None.
        """
        q, new_k, new_v = tf.split(self._project_heads(x, training), 3)  # [heads, B, T, head_dim]
        if queries is not None:
            q, mask = q[:, :, -queries:], mask[:, -queries:]
        r = self.position(position_encoding)  # [Tk, D]
        r = tf.reshape(r, [-1, self.heads, self.head_dim])  # [Tk, heads, head_dim]
        operands = (q, content_bias, position_bias, r, mask, memory, new_k, new_v)
        if fused and not training and block_attention.available(q.dtype):
            return AttentionOutput(self.out(self._fused_context(*operands)), None, new_k, new_v)
        context, weights = self._context(*operands, training)
        return AttentionOutput(self.out(context), weights, new_k, new_v)

    def _fused_context(self, q, content_bias, position_bias, r, mask, memory, new_k, new_v):
        """`call`'s attention by kernels/block_attention, reading the cached parts in place.

        Args:
          q: [heads, B, Tq, head_dim] the queries.
          content_bias, position_bias, mask, memory: as in `call` (mask [B, Tq, Tk]).
          r: [Tk, heads, head_dim] the projected position encodings.
          new_k, new_v: [heads, B, Tq, head_dim] the new tokens' keys and values.

        Returns:
          [B, Tq, D] the heads' context, before the output projection.
        """
        parts = ((), ()) if memory is None else memory
        context = block_attention.attend(
            q,
            tf.convert_to_tensor(content_bias),
            tf.convert_to_tensor(position_bias),
            r,
            mask,
            [*parts[0], new_k],
            [*parts[1], new_v],
            self.scale,
        )  # [B, Tq, heads, head_dim]
        return tf.reshape(context, [tf.shape(q)[1], tf.shape(q)[2], self.width])

    def _context(self, q, content_bias, position_bias, r, mask, memory, new_k, new_v, training):
        """`call`'s attention in TensorFlow ops (arguments as in `_fused_context`).

        Returns:
          (context [B, Tq, D] before the output projection, weights [B, heads, Tq, Tk] before
          dropout).
        """
        # One concat of the cached parts and the new tokens, then two batched matmuls over all
        # keys: measured faster than one per part (tiny batched matmuls are overhead-bound).
        keys, values = new_k, new_v
        if memory is not None:
            keys = tf.concat([*memory[0], new_k], axis=2)  # [h, B, Tk, head_dim]
            values = tf.concat([*memory[1], new_v], axis=2)  # [h, B, Tk, head_dim]
        r = tf.transpose(r, [1, 2, 0])  # [h, hd, Tk]
        # Under a mixed policy q, k, v are bfloat16/float16 while u, v stay float32 variables.
        content_bias, position_bias = (tf.cast(b, q.dtype) for b in (content_bias, position_bias))
        content = tf.matmul(q + content_bias[:, None, None], keys, transpose_b=True)  # [h,B,Tq,Tk]
        q_position = tf.reshape(q + position_bias[:, None, None], [self.heads, -1, self.head_dim])
        position = tf.reshape(tf.matmul(q_position, r), tf.shape(content))  # [h, B, Tq, Tk]
        scores = (content + relative_shift(position)) * self.scale  # [h, B, Tq, Tk]
        # -inf gives exact zeros on masked keys; no row is empty because a query sees itself.
        scores = tf.where(mask[None], scores, float("-inf"))
        weights = tf.nn.softmax(tf.cast(scores, tf.float32), axis=-1)  # [h, B, Tq, Tk]
        weights_dropped = tf.cast(self.dropout(weights, training=training), q.dtype)
        context = tf.matmul(weights_dropped, values)  # [h, B, Tq, head_dim]
        context = tf.transpose(context, [1, 2, 0, 3])  # [B, Tq, heads, head_dim]
        context = tf.reshape(context, [tf.shape(q)[1], tf.shape(q)[2], self.width])
        weights = tf.transpose(weights, [1, 0, 2, 3])  # [B, h, Tq, Tk]; pruned unless used
        return context, weights


class TransformerXLBlock(keras.layers.Layer):
    """Relative attention and a SiLU feed-forward, each as x = LayerNorm(x + dropout(f(x))).

    The feed-forward layers keep nn.Linear's default, weights and biases U(+-1 / sqrt(fan_in));
    LayerNorm starts at scale 1, offset 0.
    """

    def __init__(self, width: int, heads: int, ffn: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.attention = RelativeMultiHeadAttention(width, heads, dropout, name="attention")
        self.attention_norm = layer_norm.LayerNorm(1e-5, name="attention_norm")
        self.ffn_in = keras.layers.Dense(
            ffn,
            activation=activations.silu,
            kernel_initializer=initializers.torch_default_kernel(),
            bias_initializer=initializers.torch_default_bias(width),
            name="ffn_in",
        )
        self.ffn_out = keras.layers.Dense(
            width,
            kernel_initializer=initializers.torch_default_kernel(),
            bias_initializer=initializers.torch_default_bias(ffn),
            name="ffn_out",
        )
        self.ffn_norm = layer_norm.LayerNorm(1e-5, name="ffn_norm")
        self.dropout = dropout_lib.Dropout(dropout, name="dropout")

    def build(self, input_shape=None):
        self.attention.build()
        self.attention_norm.build((None, self.width))
        self.ffn_in.build((None, self.width))
        self.ffn_out.build((None, self.ffn_in.units))
        self.ffn_norm.build((None, self.width))

    def call(
        self,
        x,
        position_encoding,
        content_bias,
        position_bias,
        mask,
        memory=None,
        training=False,
        queries=None,
        fused=False,
    ) -> AttentionOutput:
        """Same arguments as `RelativeMultiHeadAttention.call`; output [B, Tq, D] (Tq' rows)."""
        attention = self.attention(
            x,
            position_encoding,
            content_bias,
            position_bias,
            mask,
            memory,
            training=training,
            queries=queries,
            fused=fused,
        )
        if queries is not None:
            x = x[:, -queries:]
        x = self.attention_norm(
            x + self.dropout(attention.output, training=training), training=training
        )
        y = self.ffn_out(self.dropout(self.ffn_in(x), training=training))
        x = self.ffn_norm(x + self.dropout(y, training=training), training=training)
        return attention._replace(output=x)


class TransformerXL(keras.layers.Layer):
    """A stack of `TransformerXLBlock`s sharing the position encodings and the biases u and v.

    u and v [heads, head_dim] start Xavier-uniform, as in the original.
    """

    def __init__(self, num_layers: int, width: int, heads: int, ffn: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.blocks = [
            TransformerXLBlock(width, heads, ffn, dropout, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.position_dropout = dropout_lib.Dropout(dropout, name="position_dropout")

    def build(self, input_shape=None):
        head_shape = (self.heads, self.width // self.heads)
        self.content_bias = self.add_weight(
            shape=head_shape, initializer=initializers.xavier_uniform(), name="content_bias"
        )
        self.position_bias = self.add_weight(
            shape=head_shape, initializer=initializers.xavier_uniform(), name="position_bias"
        )
        for block in self.blocks:
            block.build()

    def call(
        self,
        x: tf.Tensor,
        mask: tf.Tensor,
        memory: Sequence[LayerMemory] | None = None,
        training: bool = False,
        outputs: int | None = None,
        fused: bool = False,
    ) -> TransformerXLOutput:
        """Runs the Tq new tokens through every block.

        Args:
          x: [B, Tq, D] token embeddings.
          mask: [B, Tq, Tk] bool, Tk = M + Tq (see `RelativeMultiHeadAttention.call`).
          memory: per layer the cached keys and values (see LayerMemory), or None (M = 0).
          training: enables dropout.
          outputs: if set, the last block computes only the last `outputs` tokens (hidden
            [B, outputs, D]); the others feed the next step only through their keys and values.
            The last layer's attention weights then cover those queries.
          fused: attend with the fused kernel where it runs (see `RelativeMultiHeadAttention`);
            the attention weights are then None.
        """
        position_encoding = sinusoidal_encoding(tf.shape(mask)[-1], self.width)  # [Tk, D]
        position_encoding = self.position_dropout(position_encoding, training=training)
        attention, keys, values = [], [], []
        for i, block in enumerate(self.blocks):
            out = block(
                x,
                position_encoding,
                self.content_bias,
                self.position_bias,
                mask,
                None if memory is None else memory[i],
                training=training,
                queries=outputs if i == len(self.blocks) - 1 else None,
                fused=fused,
            )
            x = out.output
            attention.append(out.weights)
            keys.append(out.keys)
            values.append(out.values)
        return TransformerXLOutput(x, tuple(attention), tuple(keys), tuple(values))

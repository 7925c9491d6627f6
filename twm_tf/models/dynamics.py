"""TWM's dynamics model: a Transformer-XL over interleaved latent, action and reward tokens."""

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.ops import activations
from twm_tf.models import distributions
from twm_tf.ops import dropout as dropout_lib
from twm_tf.models import initializers
from twm_tf.models import transformer_xl

# Token layout of a window of T steps, K = 3 tokens per step (K = 2 without reward inputs). The
# reward of the last step is not known yet, so the window ends at a_{T-1}: N = K T - (K - 2).
#
#   token:   z_0  a_0  r_0   z_1  a_1  r_1   ...   z_{T-1}  a_{T-1}
#   step:     0    0    0     1    1    1            T-1      T-1
#   output:        h_0             h_1                        h_{T-1}
#                   |               |                           |
#   heads:   z_1, r_0, g_0   z_2, r_1, g_1            z_T, r_{T-1}, g_{T-1}
#
# h_t is read at the ACTION token: it has seen z_{<=t}, a_{<=t} and r_{<t}, so it predicts the
# outcome of transition t (reward r_t, discount g_t) and the next latent z_{t+1}. A token of step s
# attends tokens of steps s - memory_steps .. s (causally), none before the last done.
#
# `step` at step t runs the new block [r_{t-1}, z_t, a_t] against a cache holding, per layer, the
# projected keys/values of up to M + 1 earlier blocks (M = memory_steps), oldest first:
#
#   block 0:   r_{t-2-M}  z_{t-1-M}  a_{t-1-M}   <- z, a seen by r_{t-1} only; r never
#   block 1:   r_{t-1-M}  z_{t-M}    a_{t-M}     <- r seen by r_{t-1} only (it is of step t-1-M)
#     ...
#   block M:   r_{t-2}    z_{t-1}    a_{t-1}
#   new:       r_{t-1}    z_t        a_t         <- the queries; r_{t-1} is of step t-1
#
# Without reward tokens the blocks are [z_s, a_s] and M of them suffice. A full cache drops block 0
# and appends the new block; a shorter one (from `prefill` of a short window) grows by it, so a
# rollout from one real step attends only over the blocks that exist. Either way the tuple is
# re-linked and no cached tensor is copied, and with n blocks slot i of the L = K n slots sits at
# distance L + q - i from new token q: positions are never stored.


class DynamicsOutput(NamedTuple):
    """Predictions read at the action tokens ([B, T, ...] from a window, [B, ...] from a step)."""

    next_logits: tf.Tensor  # [..., V, C] unnormalized logits of z_{t+1}
    reward: tf.Tensor  # [...] mean of the unit-variance Gaussian over (tanh) r_t
    discount_logit: tf.Tensor  # [...] Bernoulli logit of gamma_t
    attention: tuple[tf.Tensor, ...] | None  # per layer [B, heads, Tq, Tk] over tokens


class DynamicsCache(NamedTuple):
    """Memory for `DynamicsModel.step`: n <= `cache_blocks` blocks of K tokens, oldest first.

    Slot i (of L = K n) holds a token at distance L + q - i from new token q (layout in the module
    comment), so no positions are stored. Every leaf is a tensor; a full cache (n = cache_blocks,
    as from `initial_cache`) keeps its shapes through `step`, so it can be a tf.while_loop variable.
    """

    keys: tuple[tuple[tf.Tensor, ...], ...]  # [layer][block] [heads, B, K, head_dim], projected
    values: tuple[tuple[tf.Tensor, ...], ...]  # [layer][block] [heads, B, K, head_dim], projected
    valid: tf.Tensor  # [B, L] bool: the slot holds a token of the current episode


class PredictionHead(keras.layers.Layer):
    """MLP on h: SiLU first (h is a LayerNorm output), SiLU hidden layers with dropout, linear.

    Kaiming-uniform weights (gain sqrt 2 on the hidden layers, 1 on the final one) and zero biases
    as in the original, except the final bias, which starts at `bias`.
    """

    def __init__(
        self, hidden: tuple[int, ...], units: int, dropout: float, bias: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.hidden = [
            keras.layers.Dense(
                n,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name=f"hidden_{i}",
            )
            for i, n in enumerate(hidden)
        ]
        # float32 outputs (logits, means) under mixed-precision policies too.
        self.final = keras.layers.Dense(
            units,
            kernel_initializer=initializers.kaiming_uniform(initializers.LINEAR_GAIN),
            bias_initializer=keras.initializers.Constant(bias),
            dtype="float32",
            name="final",
        )
        self.dropout = dropout_lib.Dropout(dropout, name="dropout")

    def build(self, input_shape):
        for layer in self.hidden:
            layer.build(input_shape)
            input_shape = (*input_shape[:-1], layer.units)
        self.final.build(input_shape)

    def call(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[..., D] -> [..., units]."""
        x = activations.silu(h)
        for layer in self.hidden:
            x = self.dropout(layer(x), training=training)
        return self.final(x)


def window_mask(dones: tf.Tensor, memory_steps: int, tokens_per_step: int) -> tf.Tensor:
    """Attention mask of a window's tokens (layout above).

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
    episode = tf.gather(_episode_ids(dones), step, axis=1)  # [B, N]
    same_episode = episode[:, :, None] == episode[:, None, :]  # [B, N, N]
    return (causal & span)[None] & same_episode


def _episode_ids(dones: tf.Tensor) -> tf.Tensor:
    """[B, T] number of dones before each step: equal ids <=> no episode boundary in between."""
    return tf.cumsum(tf.cast(dones, tf.int32), axis=1, exclusive=True)


class DynamicsModel(keras.Model):
    """p(z_{t+1}, r_t, gamma_t | z_{<=t}, a_{<=t}, r_{<t}): embeddings, Transformer-XL, heads.

    Two equivalent ways to run it (with dropout off they agree to float tolerance):
      * `model(z, actions, rewards, dones)`: a whole window at once (training), or `prefill`, which
        also returns the cache after the window (the imagination context).
      * `step(cache, z, action, prev_reward, reset)`: one env step against a fixed-shape cache of
        projected keys/values (imagination); its cost does not grow with the steps taken.
    Weights are created at construction.
    """

    def __init__(self, config: config_lib.Config, num_actions: int, **kwargs):
        super().__init__(**kwargs)
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        self.config = config
        self.num_actions = num_actions
        width = config.dyn_width
        self.tokens_per_step = 3 if config.reward_input else 2
        # r_{t-1} still sees step t-1-M, which needs one block more with reward tokens.
        self.cache_blocks = config.memory_steps + self.tokens_per_step - 2
        self.cache_length = self.tokens_per_step * self.cache_blocks
        # As in the original: Kaiming-uniform SiLU layers with zero biases for z and r, and
        # nn.Embedding's N(0, 1) for a, so action tokens start larger than latent tokens.
        self.latent_embedding = keras.layers.Dense(
            width,
            activation=activations.silu,
            kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
            bias_initializer=initializers.zeros(),
            name="latent_embed",
        )
        self.action_embedding = keras.layers.Embedding(
            num_actions,
            width,
            embeddings_initializer=initializers.standard_normal(),
            name="action_embed",
        )
        self.reward_embedding = (
            keras.layers.Dense(
                width,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name="reward_embed",
            )
            if config.reward_input
            else None
        )
        self.transformer = transformer_xl.TransformerXL(
            config.dyn_layers,
            width,
            config.dyn_heads,
            config.dyn_ffn,
            config.dyn_dropout,
            name="transformer",
        )
        dropout = config.dyn_dropout
        self.latent_head = PredictionHead(
            config.latent_head, config.latent_dim, dropout, name="latent_head"
        )
        self.reward_head = PredictionHead(config.scalar_head, 1, dropout, name="reward_head")
        # Start at sigmoid = gamma, the discount of every non-terminal step (clipped: finite logit).
        gamma = min(max(config.gamma, 1e-4), 1.0 - 1e-4)
        self.discount_head = PredictionHead(
            config.scalar_head,
            1,
            dropout,
            bias=math.log(gamma / (1.0 - gamma)),
            name="discount_head",
        )
        self.build()

    def build(self, input_shape=None):
        width = self.config.dyn_width
        self.latent_embedding.build((None, self.config.latent_dim))
        self.action_embedding.build((None,))
        if self.reward_embedding is not None:
            self.reward_embedding.build((None, 1))
        self.transformer.build()
        for head in (self.latent_head, self.reward_head, self.discount_head):
            head.build((None, width))

    def _step_structure(self, blocks: int) -> np.ndarray:
        """[K, L + K] bool, L = K blocks: which keys each new token may see, before validity."""
        k = self.tokens_per_step
        # The step of every slot and new token relative to t, block by block ([r_{s-1},] z_s, a_s).
        block_steps = np.arange(-blocks, 1)
        steps = np.stack([block_steps - 1] * (k - 2) + [block_steps] * 2, axis=1).reshape(-1)
        query_steps = steps[-k:, None]
        causal = np.arange(len(steps))[None, :] <= np.arange(k * blocks, len(steps))[:, None]
        return causal & (query_steps - steps[None, :] <= self.config.memory_steps)

    def _embed(self, z: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor) -> tf.Tensor:
        """[..., V, C], [...], [...] -> [..., K, D] tokens of each step in the order z, a, r."""
        if tuple(z.shape[-2:]) != (self.config.latent_vars, self.config.latent_classes):
            raise ValueError(
                f"z must end in [latent_vars, latent_classes] = "
                f"[{self.config.latent_vars}, {self.config.latent_classes}], got {z.shape}"
            )
        z = tf.reshape(z, tf.concat([tf.shape(z)[:-2], [self.config.latent_dim]], axis=0))
        tokens = [self.latent_embedding(z), self.action_embedding(actions)]
        if self.reward_embedding is not None:
            tokens.append(self.reward_embedding(tf.cast(rewards, tf.float32)[..., None]))
        return tf.stack(tokens, axis=-2)

    def _predict(self, h: tf.Tensor, attention, training: bool) -> DynamicsOutput:
        """Heads on h [..., D]."""
        logits = self.latent_head(h, training=training)
        shape = tf.concat(
            [tf.shape(h)[:-1], [self.config.latent_vars, self.config.latent_classes]], 0
        )
        return DynamicsOutput(
            next_logits=tf.reshape(logits, shape),
            reward=tf.squeeze(self.reward_head(h, training=training), -1),
            discount_logit=tf.squeeze(self.discount_head(h, training=training), -1),
            attention=attention,
        )

    def _window(self, z, actions, rewards, dones, training):
        """Runs a whole window; returns the transformer output over its N tokens."""
        tokens = self._embed(z, actions, rewards)  # [B, T, K, D]
        batch, steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
        k = self.tokens_per_step
        tokens = tf.reshape(tokens, [batch, steps * k, self.config.dyn_width])
        tokens = tokens[:, : steps * k - (k - 2)]  # [B, N, D]: no r_{T-1} token
        mask = window_mask(dones, self.config.memory_steps, k)  # [B, N, N]
        return self.transformer(tokens, mask, training=training)

    def call(self, z, actions, rewards, dones, training=False, return_attention=False):
        """Predicts from every step of a window, each step seeing only the past.

        Args:
          z: [B, T, V, C] float latents (one-hot samples).
          actions: [B, T] int32.
          rewards: [B, T] float32 tanh rewards; rewards[:, T-1] is unused.
          dones: [B, T] bool, True where transition t ended the episode (attention stops there).
          training: enables dropout.
          return_attention: also return per-layer attention weights [B, heads, N, N] over the
            window's tokens (layout in the module comment).

        Returns:
          DynamicsOutput with [B, T, ...] fields, index t read at token a_t.
        """
        out = self._window(z, actions, rewards, dones, training)
        h = out.hidden[:, 1 :: self.tokens_per_step]  # [B, T, D] at the action tokens
        return self._predict(h, out.attention if return_attention else None, training)

    def prefill(self, z, actions, rewards, dones, training=False, return_attention=False):
        """`call` that also returns the cache after the window, ready for `step` at step T.

        The next `step` gets prev_reward = rewards[:, T-1] and reset = dones[:, T-1]. The cache has
        min(T, cache_blocks) blocks when T is static (a short window gives a short cache, which
        `step` grows), else cache_blocks with the slots before the window invalid.

        Returns:
          (DynamicsOutput with [B, T, ...] fields, DynamicsCache).
        """
        out = self._window(z, actions, rewards, dones, training)
        h = out.hidden[:, 1 :: self.tokens_per_step]
        output = self._predict(h, out.attention if return_attention else None, training)
        k, steps = self.tokens_per_step, dones.shape[1]
        num_blocks = self.cache_blocks if steps is None else min(steps, self.cache_blocks)
        length = k * num_blocks
        n = tf.shape(out.hidden)[1]
        # In front: the missing r_{-1} of block 0 and, for short windows, empty blocks.
        pad = (k - 2) + k * tf.maximum(num_blocks - tf.shape(dones)[1], 0)

        def blocks(x):  # [heads, B, N, head_dim] -> num_blocks x [heads, B, K, head_dim]
            x = tf.pad(tf.stop_gradient(x), [[0, 0], [0, 0], [pad, 0], [0, 0]])[:, :, -length:]
            return tuple(tf.split(x, num_blocks, axis=2))

        # A token stays visible iff no episode ended between its step and step T-1.
        episode = _episode_ids(dones)  # [B, T]
        token_step = tf.range(n) // k
        valid = tf.gather(episode, token_step, axis=1) == episode[:, -1:]  # [B, N]
        valid = tf.pad(valid, [[0, 0], [pad, 0]])[:, -length:]
        cache = DynamicsCache(
            tuple(blocks(x) for x in out.keys), tuple(blocks(x) for x in out.values), valid
        )
        return output, cache

    def initial_cache(self, batch_size) -> DynamicsCache:
        """A full cache (`cache_blocks` blocks, every slot invalid) for `batch_size` rows."""
        heads = self.config.dyn_heads
        zeros = tf.zeros(
            [heads, batch_size, self.tokens_per_step, self.config.dyn_width // heads],
            self.compute_dtype,
        )
        layer = (zeros,) * self.cache_blocks
        return DynamicsCache(
            keys=(layer,) * self.config.dyn_layers,
            values=(layer,) * self.config.dyn_layers,
            valid=tf.zeros([batch_size, self.cache_length], tf.bool),
        )

    def step(
        self, cache, z, action, prev_reward, reset, training=False, return_attention=False
    ) -> tuple[DynamicsOutput, DynamicsCache]:
        """Advances one env step: feeds r_{t-1}, z_t, a_t and predicts from a_t.

        Args:
          cache: DynamicsCache of n blocks from `initial_cache`, `prefill` or the previous `step`.
          z: [B, V, C] latent z_t.
          action: [B] int32 action a_t.
          prev_reward: [B] float32 tanh reward r_{t-1}, fed as step t-1's reward token; ignored
            where `reset` (and always without reward inputs).
          reset: [B] bool, True where step t starts an episode or a rollout: it sees nothing from
            the cache (pass dones[t-1] to mirror `call`).
          training: enables dropout.
          return_attention: also return per-layer weights [B, heads, K, L + K] of the new tokens,
            L = K n.

        Returns:
          (DynamicsOutput with [B, ...] fields, the new cache: n + 1 blocks while n <
          cache_blocks, else the same shapes).
        """
        k, num_blocks = self.tokens_per_step, len(cache.keys[0])
        if num_blocks > self.cache_blocks:
            raise ValueError(f"cache has {num_blocks} blocks, more than {self.cache_blocks}")
        length = k * num_blocks
        reset = tf.convert_to_tensor(reset, tf.bool)
        tokens = self._embed(z, action, prev_reward)  # [B, K, D] as z, a, r
        tokens = tf.concat([tokens[:, 2:], tokens[:, :2]], axis=1)  # [B, K, D] as r, z, a
        keep = cache.valid & ~reset[:, None]  # [B, L]
        batch = tf.shape(reset)[0]
        new_valid = tf.concat(
            [tf.tile(~reset[:, None], [1, k - 2]), tf.ones([batch, 2], tf.bool)], axis=1
        )  # [B, K]: a reset drops r_{t-1} (it belongs to the ended episode), never z_t or a_t
        key_valid = tf.concat([keep, new_valid], axis=1)  # [B, L + K]
        structure = tf.constant(self._step_structure(num_blocks))
        mask = structure[None] & key_valid[:, None]  # [B, K, L + K]
        # Every token sees itself, so even a dropped r_{t-1} has a finite softmax.
        mask |= tf.constant(np.eye(k, length + k, length, dtype=bool))[None]
        out = self.transformer(
            tokens,
            mask,
            memory=tuple(zip(cache.keys, cache.values, strict=True)),
            training=training,
            # The heads read a_t only; r_{t-1} and z_t matter to later steps as keys and values.
            outputs=None if return_attention else 1,
            fused=not return_attention,
        )
        output = self._predict(
            out.hidden[:, -1], out.attention if return_attention else None, training
        )

        drop = 1 if num_blocks == self.cache_blocks else 0  # a full cache drops its oldest block

        def shift(blocks, new):
            return (*blocks[drop:], tf.stop_gradient(new))

        new_cache = DynamicsCache(
            keys=tuple(shift(old, new) for old, new in zip(cache.keys, out.keys, strict=True)),
            values=tuple(
                shift(old, new) for old, new in zip(cache.values, out.values, strict=True)
            ),
            valid=tf.concat([keep[:, k * drop :], new_valid], axis=1),
        )
        return output, new_cache


def dynamics_loss(
    output: DynamicsOutput,
    target_logits: tf.Tensor,
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    dones: tf.Tensor,
    config: config_lib.Config,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """L_dyn = H(sg q(z_{t+1}), p(z_{t+1} | h_t)) + beta1 NLL(r_t) + beta2 NLL(gamma_t) (Eq. 8).

    Args:
      output: DynamicsOutput of a window, [B, T, ...].
      target_logits: [B, T, V, C] encoder logits of z_{t+1} (gradient stopped here).
      rewards: [B, T] tanh rewards r_t.
      terminated: [B, T] bool, transition t reached a terminal (discount target 0).
      dones: [B, T] bool, terminated or truncated: z_{t+1} starts a new episode and is no target.
      config: uses gamma, beta1, beta2.

    Returns:
      (scalar total, metrics) with the unweighted terms under "dyn/latent", "dyn/reward",
      "dyn/discount". The latent cross-entropy sums over the V variables and averages over the
      unmasked steps; reward and discount terms average over all steps. The reward NLL is that of
      a unit-variance Normal, 0.5 (r - mean)^2 + 0.5 ln(2 pi); the discount NLL is the Bernoulli's
      for the soft target gamma (1 - terminal), i.e. the sigmoid cross-entropy.
    """
    target = distributions.latent(tf.stop_gradient(target_logits))
    cross_entropy = target.cross_entropy(distributions.latent(output.next_logits))  # [B, T]
    weights = 1.0 - tf.cast(dones, tf.float32)
    latent = tf.reduce_sum(weights * cross_entropy) / tf.maximum(tf.reduce_sum(weights), 1.0)
    rewards = tf.cast(rewards, tf.float32)
    reward = -tf.reduce_mean(distributions.reward(output.reward).log_prob(rewards))
    discount_target = config.gamma * (1.0 - tf.cast(terminated, tf.float32))
    discount_head = distributions.discount(output.discount_logit)
    discount = -tf.reduce_mean(discount_head.log_prob(discount_target))
    total = latent + config.beta1 * reward + config.beta2 * discount
    metrics = {
        "dyn/loss": total,
        "dyn/latent": latent,
        "dyn/reward": reward,
        "dyn/discount": discount,
        "dyn/reward_mae": tf.reduce_mean(tf.abs(rewards - output.reward)),
        "dyn/discount_mae": tf.reduce_mean(tf.abs(discount_target - discount_head.mean())),
    }
    return total, metrics

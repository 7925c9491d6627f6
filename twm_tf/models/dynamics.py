"""TWM's dynamics model: a Transformer-XL over interleaved latent, action and reward tokens."""

import math
from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.models import heads as heads_lib
from twm_tf.models import initializers
from twm_tf.models import token_masks
from twm_tf.models import transformer_xl
from twm_tf.ops import activations

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


def _silu_embedding(width: int, name: str) -> keras.layers.Dense:
    """A SiLU dense layer with Kaiming-uniform weights and zero biases, as the original's."""
    return keras.layers.Dense(
        width,
        activation=activations.silu,
        kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
        bias_initializer=initializers.zeros(),
        name=name,
    )


class DynamicsModel(keras.Model):
    """p(z_{t+1}, r_t, gamma_t | z_{<=t}, a_{<=t}, r_{<t}): embeddings, Transformer-XL, heads.

    Two equivalent ways to run it (with dropout off they agree to float tolerance):
      * `model(z, actions, rewards, dones)`: a whole window at once (training), or `prefill`, which
        also returns the cache after the window (the imagination context).
      * `step(cache, z, action, prev_reward, reset)`: one env step against a fixed-shape cache of
        projected keys/values (imagination); its cost does not grow with the steps taken.
    Weights are created at construction.

    Args:
      num_actions: A >= 1, rows of the action embedding.
      latent_vars: V, categorical variables of z.
      latent_classes: C, classes per variable.
      num_layers: Transformer-XL blocks (config.dyn_layers).
      width: D, the token width (config.dyn_width).
      heads: attention heads, a divisor of width (config.dyn_heads).
      ffn: the feed-forward width (config.dyn_ffn).
      dropout: dropout rate in the Transformer-XL and the heads (config.dyn_dropout).
      memory_steps: M, a token of step s attends steps s - M .. s.
      latent_head: hidden widths of the next-latent head.
      scalar_head: hidden widths of the reward and discount heads.
      reward_input: feed reward tokens (K = 3 tokens per step; False: K = 2).
      gamma: the discount head's initial prediction, sigmoid(bias) = gamma.
    """

    def __init__(
        self,
        *,
        num_actions: int,
        latent_vars: int,
        latent_classes: int,
        num_layers: int,
        width: int,
        heads: int,
        ffn: int,
        dropout: float,
        memory_steps: int,
        latent_head: tuple[int, ...],
        scalar_head: tuple[int, ...],
        reward_input: bool,
        gamma: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        self.num_actions = num_actions
        self.latent_shape = (latent_vars, latent_classes)
        self.memory_steps = memory_steps
        self.tokens_per_step = 3 if reward_input else 2
        # r_{t-1} still sees step t-1-M, which needs one block more with reward tokens.
        self.cache_blocks = memory_steps + self.tokens_per_step - 2
        self.cache_length = self.tokens_per_step * self.cache_blocks
        # As in the original: Kaiming-uniform SiLU layers with zero biases for z and r, and
        # nn.Embedding's N(0, 1) for a, so action tokens start larger than latent tokens.
        self.latent_embedding = _silu_embedding(width, "latent_embed")
        self.action_embedding = keras.layers.Embedding(
            num_actions,
            width,
            embeddings_initializer=initializers.standard_normal(),
            name="action_embed",
        )
        self.reward_embedding = _silu_embedding(width, "reward_embed") if reward_input else None
        self.transformer = transformer_xl.TransformerXL(
            num_layers, width, heads, ffn, dropout, name="transformer"
        )
        latent_dim = latent_vars * latent_classes
        self.latent_head = heads_lib.PredictionHead(
            latent_head, latent_dim, dropout, name="latent_head"
        )
        self.reward_head = heads_lib.PredictionHead(scalar_head, 1, dropout, name="reward_head")
        # Start at sigmoid = gamma, the discount of every non-terminal step (clipped: finite logit).
        gamma = min(max(gamma, 1e-4), 1.0 - 1e-4)
        self.discount_head = heads_lib.PredictionHead(
            scalar_head, 1, dropout, bias=math.log(gamma / (1.0 - gamma)), name="discount_head"
        )
        self.build()

    @classmethod
    def from_twm_config(
        cls, config: config_lib.Config, num_actions: int, **kwargs
    ) -> "DynamicsModel":
        """The model of `config`'s latent_*, dyn_*, *_head, memory_steps, reward_input, gamma."""
        return cls(
            num_actions=num_actions,
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            num_layers=config.dyn_layers,
            width=config.dyn_width,
            heads=config.dyn_heads,
            ffn=config.dyn_ffn,
            dropout=config.dyn_dropout,
            memory_steps=config.memory_steps,
            latent_head=config.latent_head,
            scalar_head=config.scalar_head,
            reward_input=config.reward_input,
            gamma=config.gamma,
            **kwargs,
        )

    def build(self, input_shape=None):
        self.latent_embedding.build((None, self.latent_shape[0] * self.latent_shape[1]))
        self.action_embedding.build((None,))
        if self.reward_embedding is not None:
            self.reward_embedding.build((None, 1))
        self.transformer.build()
        for head in (self.latent_head, self.reward_head, self.discount_head):
            head.build((None, self.transformer.width))

    def _embed(self, z: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor) -> tf.Tensor:
        """[..., V, C], [...], [...] -> [..., K, D] tokens of each step in the order z, a, r."""
        num_vars, num_classes = self.latent_shape
        if tuple(z.shape[-2:]) != self.latent_shape:
            raise ValueError(
                f"z must end in [latent_vars, latent_classes] = [{num_vars}, {num_classes}], "
                f"got {z.shape}"
            )
        z = tf.reshape(z, tf.concat([tf.shape(z)[:-2], [num_vars * num_classes]], axis=0))
        tokens = [self.latent_embedding(z), self.action_embedding(actions)]
        if self.reward_embedding is not None:
            tokens.append(self.reward_embedding(tf.cast(rewards, tf.float32)[..., None]))
        return tf.stack(tokens, axis=-2)

    def _predict(self, h: tf.Tensor, attention, training: bool) -> DynamicsOutput:
        """Heads on h [..., D]."""
        logits = self.latent_head(h, training=training)
        shape = tf.concat([tf.shape(h)[:-1], self.latent_shape], 0)
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
        tokens = tf.reshape(tokens, [batch, steps * k, self.transformer.width])
        tokens = tokens[:, : steps * k - (k - 2)]  # [B, N, D]: no r_{T-1} token
        mask = token_masks.window_mask(dones, self.memory_steps, k)  # [B, N, N]
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
        episode = token_masks.episode_ids(dones)  # [B, T]
        token_step = tf.range(n) // k
        valid = tf.gather(episode, token_step, axis=1) == episode[:, -1:]  # [B, N]
        valid = tf.pad(valid, [[0, 0], [pad, 0]])[:, -length:]
        cache = DynamicsCache(
            tuple(blocks(x) for x in out.keys), tuple(blocks(x) for x in out.values), valid
        )
        return output, cache

    def initial_cache(self, batch_size) -> DynamicsCache:
        """A full cache (`cache_blocks` blocks, every slot invalid) for `batch_size` rows."""
        heads, num_layers = self.transformer.heads, len(self.transformer.blocks)
        zeros = tf.zeros(
            [heads, batch_size, self.tokens_per_step, self.transformer.width // heads],
            self.compute_dtype,
        )
        layer = (zeros,) * self.cache_blocks
        return DynamicsCache(
            keys=(layer,) * num_layers,
            values=(layer,) * num_layers,
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
        num_blocks = len(cache.keys[0])
        if num_blocks > self.cache_blocks:
            raise ValueError(f"cache has {num_blocks} blocks, more than {self.cache_blocks}")
        reset = tf.convert_to_tensor(reset, tf.bool)
        tokens = self._embed(z, action, prev_reward)  # [B, K, D] as z, a, r
        tokens = tf.concat([tokens[:, 2:], tokens[:, :2]], axis=1)  # [B, K, D] as r, z, a
        mask, keep, new_valid = token_masks.step_mask(
            cache.valid, reset, num_blocks, self.memory_steps, self.tokens_per_step
        )
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
        return output, self._advance_cache(cache, out, keep, new_valid)

    def _advance_cache(self, cache, out, keep, new_valid) -> DynamicsCache:
        """The cache after `step`: its blocks and the new one's keys/values (transformer `out`).

        A full cache drops its oldest block; a shorter one grows by the new block.
        """
        drop = 1 if len(cache.keys[0]) == self.cache_blocks else 0

        def shift(blocks, new):
            return (*blocks[drop:], tf.stop_gradient(new))

        return DynamicsCache(
            keys=tuple(shift(old, new) for old, new in zip(cache.keys, out.keys, strict=True)),
            values=tuple(
                shift(old, new) for old, new in zip(cache.values, out.values, strict=True)
            ),
            valid=tf.concat([keep[:, self.tokens_per_step * drop :], new_valid], axis=1),
        )

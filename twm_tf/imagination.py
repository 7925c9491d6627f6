"""Imagined rollouts: the policy acts inside the world model for H steps from M real starts.

Every step feeds only the newest tokens to the Transformer-XL, whose cache holds each layer's
projected keys/values. The H steps are unrolled in the graph (one trace per (M, H)) so that the
cache can grow: the rollout's memory starts with the one real context step and gains a block per
step, and step t attends over t + 2 blocks instead of a full cache that is mostly empty slots (a
tf.while_loop needs fixed shapes). Once the cache is full its cost per step is flat.

    context (real)      start (real)    imagined ...
    z_{s-1} a_{s-1} | r_{s-1} z_s a_s | r_s z_{s+1} a_{s+1} | ...
                                   h_s -> z_{s+1}, r_s, gamma_s

A rollout restarts when the product of its predicted discounts since its (re)start falls below
config.restart_threshold: the next state is the encoder sample of a random buffer observation,
attention to the rollout's past is cut (reset) and the product restarts at 1. Only the
observations drawn for restarts are encoded and sampled, as in the original (usually a few per
step, against a whole pool); XLA needs static shapes, so under config.jit_compile the pool is
encoded once. The trajectory carries no gradient, so latents are sampled without the
straight-through path; only the policy's logits keep theirs, so that an update recorded with
`ActorCritic.recording_actor` reuses the rollout's forward passes of the actor.
"""

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import dynamics
from twm_tf.ops import gumbel


class Trajectory(NamedTuple):
    """An imagined batch; time on axis 1."""

    z: tf.Tensor  # [M, H + 1, V, C] states z_0..z_H (z_H only bootstraps)
    actions: tf.Tensor  # [M, H] int32
    rewards: tf.Tensor  # [M, H] predicted mean of tanh reward r_t
    discounts: tf.Tensor  # [M, H] predicted gamma_t
    dones: tf.Tensor  # [M, H] bool, the rollout restarts after step t
    restarts: tf.Tensor  # [M, H] bool, step t begins a fresh rollout
    logits: tf.Tensor  # [M, H, A] the actor's logits at z_t that a_t was drawn from, with gradient


class Starts(NamedTuple):
    """M imagination starts: the real step t that seeds the memory and the real z_{t+1}."""

    context_z: tf.Tensor  # [M, V, C]
    context_action: tf.Tensor  # [M] int32
    context_reward: tf.Tensor  # [M] tanh reward r_t
    context_done: tf.Tensor  # [M] bool
    start_z: tf.Tensor  # [M, V, C]


def select_starts(latents, num_starts: int, seed: tf.Tensor) -> Starts:
    """Draws M (context, start) pairs without replacement from the window batch.

    The pairs are the N * l transitions (t, t + 1), t = 0..l - 1, as the authors' code draws
    them: the real step t (the window's context step for t = 0) seeds the memory and z_{t+1}, a
    step the VAE trained on in this update, starts the rollout.

    Args:
      latents: world_model.Latents with [N, L] tensors (L = l + 2).
      num_starts: M <= N * l.
      seed: [2] stateless seed.

    Returns:
      The M Starts.
    """
    n, length = latents.actions.shape[0], latents.actions.shape[1]
    per_row = length - 2
    # Gumbel top-k of equal logits = uniform sampling without replacement.
    _, flat = tf.math.top_k(gumbel.noise([n * per_row], seed), k=num_starts)
    row, col = flat // per_row, flat % per_row
    context = tf.stack([row, col], axis=-1)  # step t
    start = tf.stack([row, col + 1], axis=-1)  # step t + 1
    return Starts(
        context_z=tf.gather_nd(latents.z, context),
        context_action=tf.gather_nd(latents.actions, context),
        context_reward=tf.gather_nd(latents.rewards, context),
        context_done=tf.gather_nd(latents.dones, context),
        start_z=tf.gather_nd(latents.z, start),
    )


def _next_states(
    next_z, done, encode, restart_obs, pool_logits, pick_seed, sample_seed
) -> tf.Tensor:
    """[M, V, C] next_z, with a latent sample of a uniformly drawn pool row where done.

    pick_seed draws the pool rows (one per rollout), sample_seed the latents; both [2].
    """
    m = next_z.shape[0]

    def pick():  # [M] pool rows
        size = tf.shape(restart_obs)[0]
        return tf.random.stateless_uniform([m], pick_seed, maxval=size, dtype=tf.int32)

    if pool_logits is not None:
        restart_z = distributions.sample_latent(
            tf.gather(pool_logits, pick()), sample_seed, straight_through=False
        )
        return tf.where(done[:, None, None], restart_z, next_z)

    def restart():
        rows = tf.cast(tf.where(done), tf.int32)  # [n, 1], n >= 1
        logits = encode(tf.gather(restart_obs, tf.gather_nd(pick(), rows)))  # [n, V, C]
        z = distributions.sample_latent(logits, sample_seed, straight_through=False)
        return tf.tensor_scatter_nd_update(next_z, rows, z)

    # Most steps restart no rollout; they skip the row draw and the encoder (and its batch-0
    # convolutions).
    return tf.cond(tf.reduce_any(done), restart, lambda: next_z)


def rollout(
    dynamics_model: dynamics.DynamicsModel,
    actor: actor_critic.Actor,
    starts: Starts,
    restart_obs: tf.Tensor,
    encode: Callable[[tf.Tensor], tf.Tensor],
    seed: tf.Tensor,
    config: config_lib.Config,
) -> Trajectory:
    """Imagines config.horizon steps from each start.

    Args:
      dynamics_model: the Transformer-XL.
      actor: the policy.
      starts: from select_starts.
      restart_obs: [P, S, H, W] uint8 random buffer observations; a restarting rollout takes a
        uniformly drawn row (a fresh draw at every restart) and a latent sample of its encoding.
      encode: the VAE encoder, [n, S, H, W] uint8 -> [n, V, C] logits.
      seed: [2] stateless seed.
      config: horizon, restart_threshold, jit_compile.

    Returns:
      The Trajectory, without gradient except for `logits` (to the actor's weights).
    """
    m = starts.start_z.shape[0]
    horizon = config.horizon
    seeds = tf.random.experimental.stateless_split(seed, num=4 * horizon)
    pool_logits = encode(restart_obs) if config.jit_compile else None
    _, cache = dynamics_model.prefill(
        starts.context_z[:, None],
        starts.context_action[:, None],
        starts.context_reward[:, None],
        starts.context_done[:, None],
    )  # one block; each step adds one until memory_steps + 1
    z, prev_reward, reset = starts.start_z, starts.context_reward, starts.context_done
    product = tf.ones([m])
    steps = []
    for t in range(horizon):
        logits = actor(z)  # [M, A]
        action = distributions.sample_actions(logits, seeds[3 * t])
        out, cache = dynamics_model.step(cache, z, action, prev_reward, reset=reset)
        next_z = distributions.sample_latent(
            out.next_logits, seeds[3 * t + 1], straight_through=False
        )
        discount = distributions.discount(out.discount_logit).mean()
        product = product * discount
        done = product < config.restart_threshold
        steps.append(Trajectory(z, action, out.reward, discount, done, reset, logits))
        z = _next_states(
            next_z, done, encode, restart_obs, pool_logits, seeds[3 * t + 2], seeds[3 * horizon + t]
        )
        product = tf.where(done, tf.ones_like(product), product)
        prev_reward, reset = out.reward, done
    trajectory = Trajectory(*(tf.stack(field, axis=1) for field in zip(*steps)))
    trajectory = trajectory._replace(z=tf.concat([trajectory.z, z[:, None]], axis=1))
    logits = trajectory.logits
    return tf.nest.map_structure(tf.stop_gradient, trajectory)._replace(logits=logits)


def rollout_and_gradients(
    dynamics_model: dynamics.DynamicsModel,
    agent: actor_critic.ActorCritic,
    starts: Starts,
    restart_obs: tf.Tensor,
    encode: Callable[[tf.Tensor], tf.Tensor],
    seed: tf.Tensor,
    config: config_lib.Config,
) -> tuple[Trajectory, actor_critic.ActorCriticGradients, dict[str, tf.Tensor]]:
    """`rollout` with agent's actor, then agent's gradients on it (arguments as in `rollout`).

    The rollout runs under `agent.recording_actor()`, so the actor's update reuses its forward
    passes instead of running the actor again.

    Returns:
      (the Trajectory, ActorCriticGradients, metrics), the gradients not applied.
    """
    with agent.recording_actor() as policy_tape:
        trajectory = rollout(dynamics_model, agent.actor, starts, restart_obs, encode, seed, config)
    gradients, metrics = agent.gradients(**trajectory._asdict(), policy_tape=policy_tape)
    return trajectory, gradients, metrics

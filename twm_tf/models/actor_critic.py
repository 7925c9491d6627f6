"""Actor and critic MLPs on the latent z, the GAE returns and losses, and their update step."""

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf import optimizer
from twm_tf.ops import activations
from twm_tf.models import distributions
from twm_tf.models import entropy as entropy_lib
from twm_tf.models import initializers


class _LatentMlp(keras.Model):
    """Flattens a one-hot latent [..., V, C] and applies dense layers with SiLU between them.

    Always float32, whatever the global dtype policy: the networks are cheap, and under
    mixed_bfloat16 their outputs would differ from float32 by percents. z may come in bfloat16
    from the world model; it is cast at this boundary.
    """

    def __init__(self, config: config_lib.Config, out_dim: int, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self._latent_shape = (config.latent_vars, config.latent_classes)
        # Orthogonal init with gain sqrt 2 keeps the activation scale through SiLU layers; the
        # output layer uses gain 1 (docs/spec.md, as the released code). A Sequential, not a list
        # of layers: tf.train.Checkpoint does not track Keras 3 layers held in a Python list.
        hidden = [
            keras.layers.Dense(
                width,
                activation=activations.silu,
                kernel_initializer=initializers.orthogonal(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                dtype="float32",
                name=f"hidden_{i}",
            )
            for i, width in enumerate(config.ac_hidden)
        ]
        out = keras.layers.Dense(
            out_dim,
            kernel_initializer=initializers.orthogonal(initializers.LINEAR_GAIN),
            bias_initializer=initializers.zeros(),
            dtype="float32",
            name="out",
        )
        self._mlp = keras.Sequential([*hidden, out], name="mlp")
        # Sequential takes no dtype argument; without this it would cast its inputs to the global
        # policy's compute dtype (bfloat16) before its float32 layers see them.
        self._mlp.dtype_policy = "float32"
        # Variables exist right after construction (from_classes reads the first kernel directly).
        self._mlp.build((None, config.latent_vars * config.latent_classes))

    def _trunk(self, z: tf.Tensor) -> tf.Tensor:
        """Maps z [..., V, C] to the output layer's [..., out_dim] as float32."""
        z = tf.cast(z, tf.float32)  # e.g. bfloat16 latents of a mixed-precision world model
        if tuple(z.shape[-2:]) != self._latent_shape:
            raise ValueError(
                f"{self.name} expects z of shape [..., {self._latent_shape[0]}, "
                f"{self._latent_shape[1]}] (latent_vars, latent_classes), got {z.shape}"
            )
        leading = tf.shape(z)[:-2]
        x = tf.reshape(z, [-1, self._latent_shape[0] * self._latent_shape[1]])  # [N, V*C]
        x = self._mlp(x)  # [N, out_dim]
        return tf.reshape(x, tf.concat([leading, tf.shape(x)[-1:]], 0))


class Actor(_LatentMlp):
    """The policy pi(a|z): an MLP from the one-hot latent to action logits."""

    def __init__(self, config: config_lib.Config, num_actions: int, **kwargs):
        if num_actions < 2:
            raise ValueError(f"num_actions must be >= 2 for a policy, got {num_actions}")
        super().__init__(config, num_actions, name=kwargs.pop("name", "actor"), **kwargs)
        self.num_actions = num_actions

    def call(self, z: tf.Tensor) -> tf.Tensor:
        """Returns the logits [..., A] of pi(.|z) for one-hot z [..., V, C]."""
        return self._trunk(z)

    def from_classes(self, classes: tf.Tensor) -> tf.Tensor:
        """`call` on the one-hot z with these classes: [..., V] int32 -> logits [..., A].

        A one-hot z times the first layer's kernel is the sum of V of its V * C rows, so this
        gathers them. Acting at batch 1 is bound by reading weights, and the full kernel is 2 MB
        of the 18 MB that encoder + actor would read per step (paper sizes).
        """
        num_vars, num_classes = self._latent_shape
        if classes.shape[-1] != num_vars:
            raise ValueError(
                f"{self.name} expects classes of shape [..., {num_vars}] (latent_vars), "
                f"got {classes.shape}"
            )
        first, *rest = self._mlp.layers
        leading = tf.shape(classes)[:-1]
        rows = tf.reshape(classes, [-1, num_vars]) + num_classes * tf.range(num_vars)  # [N, V]
        x = first.activation(tf.reduce_sum(tf.gather(first.kernel, rows), axis=1) + first.bias)
        for layer in rest:
            x = layer(x)  # [N, 512] ... [N, A]
        return tf.reshape(x, tf.concat([leading, tf.shape(x)[-1:]], 0))


class Critic(_LatentMlp):
    """The state value V(z): an MLP from the one-hot latent to a scalar."""

    def __init__(self, config: config_lib.Config, **kwargs):
        super().__init__(config, 1, name=kwargs.pop("name", "critic"), **kwargs)

    def call(self, z: tf.Tensor) -> tf.Tensor:
        """Returns the values [...] of one-hot z [..., V, C]."""
        return self._trunk(z)[..., 0]


# Loss weights: how much an imagined step still counts after the predicted episode-continuation
# probabilities of the steps before it. A restart (z_t re-drawn from the buffer) begins anew:
#
#   step t:       0      1       2            3      4
#   discounts:    g_0    g_1     g_2          g_3    g_4
#   restarts:     -      F       F            T      F
#   weights:      1      g_0     g_0 g_1      1      g_3
#
# restarts[:, 0] is irrelevant: the first step always weighs 1.
def discount_weights(discounts: tf.Tensor, restarts: tf.Tensor) -> tf.Tensor:
    """Cumulative product of the predicted discounts before each step since the last (re)start.

    Args:
        discounts: [M, H] float, gamma_hat_t predicted for the transition z_t -> z_{t+1}.
        restarts: [M, H] bool, step t begins a fresh rollout (z_t was re-drawn from the buffer).

    Returns:
        weights: [M, H] float32 w_t with w_0 = 1 and w_t = 1 at a restart, stop-gradient.
    """
    discounts = tf.convert_to_tensor(discounts, tf.float32)
    keep = 1.0 - tf.cast(restarts, tf.float32)
    # The discount before step 0 is 1, so w_0 = 1 whatever restarts[:, 0] says.
    previous_discounts = tf.concat([tf.ones_like(discounts[:, :1]), discounts[:, :-1]], axis=1)

    def weight(previous_weight, step):
        previous_discount, keep_t = step  # [M] each
        return keep_t * previous_weight * previous_discount + (1.0 - keep_t)

    weights = tf.scan(
        weight,
        (tf.transpose(previous_discounts), tf.transpose(keep)),  # [H, M] each
        initializer=tf.ones_like(discounts[:, 0]),
    )
    weights = tf.transpose(weights)
    return tf.stop_gradient(weights)


# Time alignment of one rollout with H = 3 (values has H + 1 entries, the last one bootstraps):
#
#   z:          z_0     z_1     z_2     z_3
#   values:     V_0     V_1     V_2     V_3
#   actions:    a_0     a_1     a_2
#   rewards:    r_0     r_1     r_2             r_t, g_t predicted for z_t, a_t -> z_{t+1}
#   discounts:  g_0     g_1     g_2             g_t zeroed where done_t: z_{t+1} is a restart
#   deltas:     d_0     d_1     d_2             d_t = r_t + g_t V_{t+1} - V_t
#   advantages: A_0 <-- A_1 <-- A_2 <-- 0       A_t = d_t + g_t lam A_{t+1}
#   returns:    R_0     R_1     R_2             R_t = A_t + V_t
def lambda_returns(
    rewards: tf.Tensor,
    values: tf.Tensor,
    discounts: tf.Tensor,
    dones: tf.Tensor,
    lam: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Generalized advantage estimates and lambda-returns, computed backwards in time.

    Args:
        rewards: [M, H] float, r_t.
        values: [M, H+1] float, V(z_t); values[:, H] is the state after the last step.
        discounts: [M, H] float, gamma_hat_t.
        dones: [M, H] bool, the rollout is cut after step t (z_{t+1} starts a new one), so neither
            value nor advantage flows back across it.
        lam: GAE lambda in [0, 1].

    Returns:
        (advantages, returns): [M, H] float32 each, stop-gradient.
    """
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    values = tf.convert_to_tensor(values, tf.float32)
    discounts = tf.convert_to_tensor(discounts, tf.float32) * (1.0 - tf.cast(dones, tf.float32))
    deltas = rewards + discounts * values[:, 1:] - values[:, :-1]  # [M, H]

    def advantage(next_advantage, step):
        delta, lam_discount = step  # [M] each
        return delta + lam_discount * next_advantage

    advantages = tf.scan(
        advantage,
        (tf.transpose(deltas), tf.transpose(lam * discounts)),  # [H, M] each
        initializer=tf.zeros_like(deltas[:, 0]),
        reverse=True,
    )
    advantages = tf.transpose(advantages)
    returns = advantages + values[:, :-1]
    return tf.stop_gradient(advantages), tf.stop_gradient(returns)


def actor_loss(
    logits: tf.Tensor,
    actions: tf.Tensor,
    advantages: tf.Tensor,
    weights: tf.Tensor,
    config: config_lib.Config,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """REINFORCE with GAE advantages plus the thresholded entropy regularizer (paper Eq. 10).

    loss = -mean(w_t log pi(a_t|z_t) sg(A_t))
           + entropy_coef * max(0, entropy_threshold - mean(w_t H(pi(.|z_t))) / ln A)

    Args:
        logits: [M, H, A] policy logits at z_t.
        actions: [M, H] int, a_t.
        advantages: [M, H] A_t (gradients are stopped).
        weights: [M, H] w_t (gradients are stopped).
        config: uses entropy_coef and entropy_threshold.

    Returns:
        (loss, metrics) with scalar loss.
    """
    advantages = tf.stop_gradient(advantages)
    weights = tf.stop_gradient(weights)
    policy = distributions.policy(logits)
    log_prob = policy.log_prob(tf.cast(actions, tf.int32))  # [M, H]
    reinforce = tf.reduce_mean(weights * log_prob * advantages)
    entropy = tf.reduce_mean(weights * policy.entropy())
    num_actions = logits.shape[-1]
    entropy_loss = entropy_lib.thresholded_entropy_loss(
        entropy, num_actions, config.entropy_threshold
    )
    loss = -reinforce + config.entropy_coef * entropy_loss
    metrics = {
        "actor/loss": loss,
        "actor/reinforce": reinforce,
        "actor/entropy": entropy,
        "actor/normalized_entropy": entropy / math.log(num_actions),
        "actor/advantage_mean": tf.reduce_mean(advantages),
        "actor/advantage_std": tf.math.reduce_std(advantages),
        "actor/weight_mean": tf.reduce_mean(weights),
    }
    return loss, metrics


def entropy_actor_loss(
    logits: tf.Tensor, weights: tf.Tensor, config: config_lib.Config
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Pretraining actor loss: only maximizes the normalized policy entropy.

    The prefill data comes from a uniformly random policy, so the actor is kept close to it
    (as in the released code): loss = -entropy_coef * mean(w_t H(pi(.|z_t))) / ln A.

    Args:
        logits: [M, H, A] policy logits.
        weights: [M, H] w_t (gradients are stopped).
        config: uses entropy_coef.

    Returns:
        (loss, metrics) with scalar loss.
    """
    num_actions = logits.shape[-1]
    entropy = tf.reduce_mean(tf.stop_gradient(weights) * distributions.policy(logits).entropy())
    normalized = entropy / math.log(num_actions)
    loss = -config.entropy_coef * normalized
    metrics = {
        "actor/loss": loss,
        "actor/entropy": entropy,
        "actor/normalized_entropy": normalized,
    }
    return loss, metrics


def critic_loss(
    values: tf.Tensor, returns: tf.Tensor, weights: tf.Tensor
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Weighted regression to the lambda-returns: mean(w_t * 0.5 * (V(z_t) - sg R_t)^2).

    Args:
        values: [M, H] V(z_t) with gradients.
        returns: [M, H] R_t (gradients are stopped).
        weights: [M, H] w_t (gradients are stopped).

    Returns:
        (loss, metrics) with scalar loss.
    """
    returns = tf.stop_gradient(returns)
    errors = values - returns
    loss = tf.reduce_mean(tf.stop_gradient(weights) * 0.5 * tf.square(errors))
    metrics = {
        "critic/loss": loss,
        "critic/value_mean": tf.reduce_mean(values),
        "critic/return_mean": tf.reduce_mean(returns),
        "critic/abs_error": tf.reduce_mean(tf.abs(errors)),
    }
    return loss, metrics


class ActorCriticGradients(NamedTuple):
    """One actor-critic update's gradients, before they are applied."""

    critic: optimizer.Gradients
    actor: optimizer.Gradients


class ActorCritic(tf.Module):
    """Actor, critic and their Adam optimizers; `update` is one critic step then one actor step.

    The returns of both steps come from the critic as it is before the update (one forward pass
    over z_0..z_H whose values are stop-gradient for the targets), so updating the critic first
    does not change the actor's advantages; the order is kept to match the paper. Wrap `update`
    and `act` in tf.function at the call site. tf.train.Checkpoint(ac) saves the networks and the
    optimizer states; tf.Module.variables does not list Keras 3 variables, use the networks'.
    """

    def __init__(self, config: config_lib.Config, num_actions: int):
        super().__init__(name="actor_critic")
        self.config = config
        self.num_actions = num_actions
        self.actor = Actor(config, num_actions)
        self.critic = Critic(config)
        self.actor_optimizer = optimizer.Optimizer("actor", config.actor_lr, config.ac_clip, config)
        self.critic_optimizer = optimizer.Optimizer(
            "critic", config.critic_lr, config.ac_clip, config
        )
        # Create every variable now, so a tf.function or checkpoint restore never has to.
        dummy = tf.zeros([1, config.latent_vars, config.latent_classes])
        self.actor(dummy)
        self.critic(dummy)
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)

    def update(self, **trajectory) -> dict[str, tf.Tensor]:
        """One critic step then one actor step; the arguments are those of `gradients`."""
        gradients, metrics = self.gradients(**trajectory)
        return {**metrics, **self.apply(gradients)}

    @contextlib.contextmanager
    def recording_actor(self) -> Iterator[tf.GradientTape]:
        """A tape that records the actor's forward passes and nothing else, for `gradients`.

        Imagination runs the actor on every state it visits; recorded, those passes are the
        actor's update's forward pass, which then need not run again (a sixth of the update's
        FLOPs). Other weights are not watched, so the world model's steps are not recorded.
        """
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in self.actor.trainable_variables])
            yield tape

    def gradients(
        self,
        z: tf.Tensor,
        actions: tf.Tensor | None,
        rewards: tf.Tensor,
        discounts: tf.Tensor,
        dones: tf.Tensor,
        restarts: tf.Tensor | None = None,
        entropy_only: bool = False,
        logits: tf.Tensor | None = None,
        policy_tape: tf.GradientTape | None = None,
    ) -> tuple[ActorCriticGradients, dict[str, tf.Tensor]]:
        """Critic and actor gradients on a batch of (imagined or real) sequences, not applied.

        Args:
            z: [M, H+1, V, C] one-hot states z_0..z_H; z_H only bootstraps the returns.
            actions: [M, H] int, a_t taken at z_t (unused, may be None, when entropy_only).
            rewards: [M, H] float, r_t.
            discounts: [M, H] float, gamma_hat_t for z_t -> z_{t+1}, gamma included (the
                discount head's probability; gamma * (1 - terminated_t) on real data).
            dones: [M, H] bool, the sequence is cut after step t (see lambda_returns).
            restarts: [M, H] bool, step t begins a fresh rollout (see discount_weights), or None
                to weigh every step 1 (real data).
            entropy_only: pretraining mode, the actor only maximizes its entropy.
            logits: [M, H, A] the actor's logits at z_0..z_{H-1}, reused when `policy_tape`
                (from `recording_actor`) recorded them with these weights; without a tape the
                actor runs again on z and they are ignored.
            policy_tape: see `logits`.

        Returns:
            (ActorCriticGradients, scalar metrics of both losses).
        """
        z = tf.cast(z, tf.float32)
        discounts = tf.cast(discounts, tf.float32)
        if restarts is None:
            weights = tf.ones_like(discounts)
        else:
            weights = discount_weights(discounts, restarts)

        # The critic's forward pass before its update also gives the actor's advantages.
        with tf.GradientTape() as tape:
            values = self.critic(z)  # [M, H+1]
            advantages, returns = lambda_returns(rewards, values, discounts, dones, self.config.lam)
            value_loss, critic_metrics = critic_loss(values[:, :-1], returns, weights)
        critic_grads = tape.gradient(value_loss, self.critic.trainable_variables)

        if policy_tape is None:
            policy_tape = tf.GradientTape()
            with policy_tape:
                logits = self.actor(z[:, :-1])  # [M, H, A]
        with policy_tape:
            if entropy_only:
                policy_loss, actor_metrics = entropy_actor_loss(logits, weights, self.config)
            else:
                policy_loss, actor_metrics = actor_loss(
                    logits, actions, advantages, weights, self.config
                )
        actor_grads = policy_tape.gradient(policy_loss, self.actor.trainable_variables)
        gradients = ActorCriticGradients(
            critic=optimizer.Gradients(value_loss, critic_grads),
            actor=optimizer.Gradients(policy_loss, actor_grads),
        )
        return gradients, {**critic_metrics, **actor_metrics}

    def apply(self, gradients: ActorCriticGradients) -> dict[str, tf.Tensor]:
        """Applies the critic's gradients, then the actor's; returns their metrics."""
        critic, actor = gradients.critic, gradients.actor
        metrics = self.critic_optimizer.apply(
            critic.loss, critic.grads, self.critic.trainable_variables
        )
        metrics.update(
            self.actor_optimizer.apply(actor.loss, actor.grads, self.actor.trainable_variables)
        )
        return metrics

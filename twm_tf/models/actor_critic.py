"""Actor and critic MLPs on the latent z, and their update step."""

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf import optimizer
from twm_tf.models import actor_critic_losses as losses
from twm_tf.models import initializers
from twm_tf.models import returns as returns_lib
from twm_tf.ops import activations


class _LatentMlp(keras.Model):
    """Flattens a one-hot latent [..., V, C] and applies dense layers with SiLU between them.

    Always float32, whatever the global dtype policy: the networks are cheap, and under
    mixed_bfloat16 their outputs would differ from float32 by percents. z may come in bfloat16
    from the world model; it is cast at this boundary.
    """

    def __init__(
        self,
        out_dim: int,
        *,
        latent_vars: int,
        latent_classes: int,
        hidden: tuple[int, ...],
        **kwargs,
    ):
        super().__init__(dtype="float32", **kwargs)
        self._latent_shape = (latent_vars, latent_classes)
        # Orthogonal init with gain sqrt 2 keeps the activation scale through SiLU layers; the
        # output layer uses gain 1 (docs/spec.md, as the released code). A Sequential, not a list
        # of layers: tf.train.Checkpoint does not track Keras 3 layers held in a Python list.
        hidden_layers = [
            keras.layers.Dense(
                width,
                activation=activations.silu,
                kernel_initializer=initializers.orthogonal(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                dtype="float32",
                name=f"hidden_{i}",
            )
            for i, width in enumerate(hidden)
        ]
        out = keras.layers.Dense(
            out_dim,
            kernel_initializer=initializers.orthogonal(initializers.LINEAR_GAIN),
            bias_initializer=initializers.zeros(),
            dtype="float32",
            name="out",
        )
        self._mlp = keras.Sequential([*hidden_layers, out], name="mlp")
        # Sequential takes no dtype argument; without this it would cast its inputs to the global
        # policy's compute dtype (bfloat16) before its float32 layers see them.
        self._mlp.dtype_policy = "float32"
        # Variables exist right after construction (from_classes reads the first kernel directly).
        self._mlp.build((None, latent_vars * latent_classes))

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
    """The policy pi(a|z): an MLP from the one-hot latent to action logits.

    Args:
        num_actions: A >= 2, the logits per state.
        latent_vars: V, categorical variables of z.
        latent_classes: C, classes per variable.
        hidden: widths of the SiLU hidden layers (config.ac_hidden).
        name: the Keras name.
    """

    def __init__(
        self,
        *,
        num_actions: int,
        latent_vars: int,
        latent_classes: int,
        hidden: tuple[int, ...],
        name: str = "actor",
        **kwargs,
    ):
        if num_actions < 2:
            raise ValueError(f"num_actions must be >= 2 for a policy, got {num_actions}")
        super().__init__(
            num_actions,
            latent_vars=latent_vars,
            latent_classes=latent_classes,
            hidden=hidden,
            name=name,
            **kwargs,
        )
        self.num_actions = num_actions

    @classmethod
    def from_twm_config(cls, config: config_lib.Config, num_actions: int, **kwargs) -> "Actor":
        """The actor of `config`: latent_vars, latent_classes and ac_hidden."""
        return cls(
            num_actions=num_actions,
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            hidden=config.ac_hidden,
            **kwargs,
        )

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
    """The state value V(z): an MLP from the one-hot latent to a scalar.

    Args:
        latent_vars: V, categorical variables of z.
        latent_classes: C, classes per variable.
        hidden: widths of the SiLU hidden layers (config.ac_hidden).
        name: the Keras name.
    """

    def __init__(
        self,
        *,
        latent_vars: int,
        latent_classes: int,
        hidden: tuple[int, ...],
        name: str = "critic",
        **kwargs,
    ):
        super().__init__(
            1,
            latent_vars=latent_vars,
            latent_classes=latent_classes,
            hidden=hidden,
            name=name,
            **kwargs,
        )

    @classmethod
    def from_twm_config(cls, config: config_lib.Config, **kwargs) -> "Critic":
        """The critic of `config`: latent_vars, latent_classes and ac_hidden."""
        return cls(
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            hidden=config.ac_hidden,
            **kwargs,
        )

    def call(self, z: tf.Tensor) -> tf.Tensor:
        """Returns the values [...] of one-hot z [..., V, C]."""
        return self._trunk(z)[..., 0]


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
        self.actor = Actor.from_twm_config(config, num_actions)
        self.critic = Critic.from_twm_config(config)
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

    def checkpointed(self) -> tuple[dict, dict]:
        """The networks and their Adam optimizers by the names a checkpoint keys them with."""
        models = {"actor": self.actor, "critic": self.critic}
        optimizers = {"actor": self.actor_optimizer.adam, "critic": self.critic_optimizer.adam}
        return models, optimizers

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
            dones: [M, H] bool, the sequence is cut after step t (see returns.lambda_returns).
            restarts: [M, H] bool, step t begins a fresh rollout (see returns.discount_weights),
                or None to weigh every step 1 (real data).
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
            weights = returns_lib.discount_weights(discounts, restarts)
        critic, advantages, critic_metrics = self._critic_gradients(
            z, rewards, discounts, dones, weights
        )
        actor, actor_metrics = self._actor_gradients(
            z, actions, advantages, weights, entropy_only, logits, policy_tape
        )
        gradients = ActorCriticGradients(critic=critic, actor=actor)
        return gradients, {**critic_metrics, **actor_metrics}

    def _critic_gradients(self, z, rewards, discounts, dones, weights):
        """The critic's gradients and, from the same forward pass, the actor's advantages.

        Returns:
            (optimizer.Gradients of the critic, advantages [M, H], critic metrics).
        """
        with tf.GradientTape() as tape:
            values = self.critic(z)  # [M, H+1]
            advantages, returns = returns_lib.lambda_returns(
                rewards, values, discounts, dones, self.config.lam
            )
            value_loss, metrics = losses.critic_loss(values[:, :-1], returns, weights)
        grads = tape.gradient(value_loss, self.critic.trainable_variables)
        return optimizer.Gradients(value_loss, grads), advantages, metrics

    def _actor_gradients(self, z, actions, advantages, weights, entropy_only, logits, policy_tape):
        """The actor's gradients (arguments as in `gradients`); returns (Gradients, metrics)."""
        if policy_tape is None:
            policy_tape = tf.GradientTape()
            with policy_tape:
                logits = self.actor(z[:, :-1])  # [M, H, A]
        with policy_tape:
            if entropy_only:
                policy_loss, metrics = losses.entropy_actor_loss(logits, weights, self.config)
            else:
                policy_loss, metrics = losses.actor_loss(
                    logits, actions, advantages, weights, self.config
                )
        grads = policy_tape.gradient(policy_loss, self.actor.trainable_variables)
        return optimizer.Gradients(policy_loss, grads), metrics

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

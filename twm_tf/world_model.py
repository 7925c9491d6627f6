"""The world model: the VAE and the Transformer-XL trained together on replayed windows.

One update on a window batch [N, l + 2]: a context step, the l trained steps, and the frame of
the last step's target (as the released code, every trained prediction has a real step before it
in memory):

    frames o_0..o_{l+1} --encoder--> q(z_t|o_t) --sample--> z_t --decoder--> o_hat_t
    (sg z_t, a_t, tanh r_t, done_t) --dynamics--> h_t --heads--> p(z_{t+1}|h_t), r_t, gamma_t

    L_dyn on t = 1..l   (targets sg q(z_{t+1}|o_{t+1}), r_t, 0.99 (1 - terminated_t))
    L_obs on t = 1..l   (consistency with sg p(z_t|h_{t-1}))

The VAE trains on the l trained steps, as the paper: the context step o_0 and the last target
o_{l+1} are encoded without gradient (the dynamics model reads z_0 and predicts z_{l+1}) and never
decoded, which also saves 2 of l + 2 decoder passes.

Both losses come from one forward pass: the stop-gradients make them independent, so applying the
dynamics optimizer first and the observation optimizer second (the paper's order, docs/spec.md)
equals two separate steps in which the observation step sees the dynamics prediction made before
the dynamics update.
"""

from typing import NamedTuple

import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf import optimizer
from twm_tf.models import distributions
from twm_tf.models import dynamics
from twm_tf.models import observation
from twm_tf.models import world_model_losses as losses


def replay_steps(config: config_lib.Config) -> int:
    """Steps after the context step that a window holds: l trained steps + the last target."""
    return config.seq_len + 1


def window_length(config: config_lib.Config) -> int:
    """Steps of a world-model window, L = l + 2: the context step, l trained, the last target."""
    return replay_steps(config) + 1


class Batch(NamedTuple):
    """Replayed windows [N, L] (L = seq_len + 2, element 0 the context step)."""

    frames: tf.Tensor  # [N, L, S, 64, 64] uint8
    actions: tf.Tensor  # [N, L] int32
    rewards: tf.Tensor  # [N, L] float32, raw game reward
    terminated: tf.Tensor  # [N, L] bool
    dones: tf.Tensor  # [N, L] bool, the next observation starts a new episode

    @classmethod
    def from_replay(cls, batch) -> "Batch":
        """The fields of a replay.Batch that the world model trains on, by name."""
        return cls(**{name: getattr(batch, name) for name in cls._fields})


class WorldModelGradients(NamedTuple):
    """One world-model update's gradients, before they are applied."""

    observation: optimizer.Gradients
    dynamics: optimizer.Gradients


class Latents(NamedTuple):
    """What imagination needs from a world-model update (all without gradient)."""

    z: tf.Tensor  # [N, L, V, C] straight-through samples of every window step
    actions: tf.Tensor  # [N, L] int32
    rewards: tf.Tensor  # [N, L] float32, tanh-transformed
    dones: tf.Tensor  # [N, L] bool


def batch_signature(config: config_lib.Config, batch_size: int, length: int) -> Batch:
    """TensorSpecs of a Batch; fixed shapes so the train step traces once."""
    size, stack = config.frame_size, config.frame_stack
    return Batch(
        frames=tf.TensorSpec([batch_size, length, stack, size, size], tf.uint8),
        actions=tf.TensorSpec([batch_size, length], tf.int32),
        rewards=tf.TensorSpec([batch_size, length], tf.float32),
        terminated=tf.TensorSpec([batch_size, length], tf.bool),
        dones=tf.TensorSpec([batch_size, length], tf.bool),
    )


class WorldModel(tf.Module):
    """The observation and dynamics models with their optimizers and joint update."""

    def __init__(self, config: config_lib.Config, num_actions: int):
        super().__init__(name="world_model")
        self.config = config
        self.num_actions = num_actions
        self.observation = observation.ObservationModel.from_twm_config(config)
        self.dynamics = dynamics.DynamicsModel.from_twm_config(config, num_actions)
        self.obs_optimizer = optimizer.Optimizer("obs", config.obs_lr, config.wm_clip, config)
        self.dyn_optimizer = optimizer.Optimizer("dyn", config.dyn_lr, config.wm_clip, config)

    def build(self) -> None:
        """Creates every variable (models and optimizers) so checkpoints restore eagerly."""
        config = self.config
        size, stack = config.frame_size, config.frame_stack
        frames = tf.zeros([1, 2, stack, size, size], tf.uint8)
        logits = self.observation.encode(frames)
        self.observation.decode(distributions.latent_mode(logits))
        zeros = tf.zeros([1, 2])
        self.dynamics(
            distributions.latent_mode(logits), tf.zeros([1, 2], tf.int32), zeros, zeros > 0
        )
        self.obs_optimizer.build(self.observation.trainable_variables)
        self.dyn_optimizer.build(self.dynamics.trainable_variables)

    def checkpointed(self) -> tuple[dict, dict]:
        """The networks and their Adam optimizers by the names a checkpoint keys them with."""
        models = {"observation": self.observation, "dynamics": self.dynamics}
        optimizers = {"observation": self.obs_optimizer.adam, "dynamics": self.dyn_optimizer.adam}
        return models, optimizers

    def _dynamics_losses(
        self, batch: Batch, rewards: tf.Tensor, logits: tf.Tensor, z: tf.Tensor, training: bool
    ):
        """The dynamics loss of a window given its tanh rewards and latents.

        Returns:
          (loss, metrics, DynamicsOutput of the whole window).
        """
        out = self.dynamics(z, batch.actions, rewards, batch.dones, training=training)
        loss, metrics = losses.dynamics_loss(
            dynamics.DynamicsOutput(
                next_logits=out.next_logits[:, 1:-1],
                reward=out.reward[:, 1:-1],
                discount_logit=out.discount_logit[:, 1:-1],
                attention=None,
            ),
            target_logits=logits[:, 2:],
            rewards=rewards[:, 1:-1],
            terminated=batch.terminated[:, 1:-1],
            dones=batch.dones[:, 1:-1],
            config=self.config,
        )
        return loss, metrics, out

    def losses(self, batch: Batch, seed: tf.Tensor, training: bool = True):
        """Both losses of one window batch.

        Args:
          batch: replayed windows [N, L].
          seed: [2] int stateless seed of the latent samples.
          training: dropout on.

        Returns:
          (obs_loss, dyn_loss, metrics, latents).
        """
        frames = batch.frames
        trained_logits = self.observation.encode(frames[:, 1:-1], training=training)
        edges = tf.concat([frames[:, :1], frames[:, -1:]], axis=1)
        edge_logits = tf.stop_gradient(self.observation.encode(edges))
        logits = tf.concat([edge_logits[:, :1], trained_logits, edge_logits[:, 1:]], axis=1)
        z = distributions.sample_latent(logits, seed)  # [N, L, V, C]
        reconstruction = self.observation.decode(z[:, 1:-1], training=training)
        z_input = tf.stop_gradient(z)
        rewards = tf.tanh(batch.rewards)
        dyn_loss, dyn_metrics, out = self._dynamics_losses(
            batch, rewards, logits, z_input, training
        )
        # z_t (t = 1..l) is predicted from h_{t-1}; a step after an episode end has no
        # prediction and the mask leaves it out of the consistency term.
        obs_loss, obs_metrics = losses.observation_loss(
            frames[:, 1:-1],
            reconstruction,
            trained_logits,
            tf.stop_gradient(out.next_logits[:, :-2]),
            self.config,
            prior_mask=tf.logical_not(batch.dones[:, :-2]),
        )
        latents = Latents(z=z_input, actions=batch.actions, rewards=rewards, dones=batch.dones)
        return obs_loss, dyn_loss, {**obs_metrics, **dyn_metrics}, latents

    def gradients(self, batch: Batch, seed: tf.Tensor):
        """Both networks' gradients on one window batch, not applied.

        Returns:
          (WorldModelGradients, metrics, latents).
        """
        with tf.GradientTape(persistent=True) as tape:
            obs_loss, dyn_loss, metrics, latents = self.losses(batch, seed)
        dyn_grads = tape.gradient(dyn_loss, self.dynamics.trainable_variables)
        # The VAE's backward pass starts once the dynamics model's has freed the Transformer-XL's
        # activations: overlapping them set the update's memory peak (docs/benchmarks.md, "Memory").
        with tf.control_dependencies([g for g in dyn_grads if g is not None]):
            obs_grads = tape.gradient(obs_loss, self.observation.trainable_variables)
        del tape
        gradients = WorldModelGradients(
            observation=optimizer.Gradients(obs_loss, obs_grads),
            dynamics=optimizer.Gradients(dyn_loss, dyn_grads),
        )
        return gradients, metrics, latents

    def apply(self, gradients: "WorldModelGradients") -> dict:
        """Applies the dynamics gradients, then the observation model's; returns their metrics."""
        dyn, obs = gradients.dynamics, gradients.observation
        metrics = self.dyn_optimizer.apply(dyn.loss, dyn.grads, self.dynamics.trainable_variables)
        metrics.update(
            self.obs_optimizer.apply(obs.loss, obs.grads, self.observation.trainable_variables)
        )
        return metrics

    def train_step(self, batch: Batch, seed: tf.Tensor):
        """One world-model update; returns (metrics, latents). Wrap in tf.function."""
        gradients, metrics, latents = self.gradients(batch, seed)
        metrics.update(self.apply(gradients))
        return metrics, latents

    def observation_step(self, frames: tf.Tensor, seed: tf.Tensor) -> dict:
        """VAE-only update on single observations [B, S, 64, 64] (pretraining: no prior yet)."""

        def loss_fn():
            logits = self.observation.encode(frames, training=True)
            z = distributions.sample_latent(logits, seed)
            reconstruction = self.observation.decode(z, training=True)
            return losses.observation_loss(frames, reconstruction, logits, None, self.config)

        return self.obs_optimizer.minimize(loss_fn, self.observation.trainable_variables)

    def dynamics_step(self, batch: Batch, seed: tf.Tensor) -> dict:
        """Dynamics-only update on windows, the VAE fixed (pretraining; no decoder pass)."""
        logits = self.observation.encode(batch.frames)
        z = tf.stop_gradient(distributions.sample_latent(logits, seed))

        def loss_fn():
            loss, metrics, _ = self._dynamics_losses(
                batch, tf.tanh(batch.rewards), logits, z, training=True
            )
            return loss, metrics

        return self.dyn_optimizer.minimize(loss_fn, self.dynamics.trainable_variables)

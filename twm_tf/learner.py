"""The learner: TWM's models, their optimizers and the compiled steps that update them.

    learner = Learner(config, num_actions)
    metrics = learner.train(replay)            # world-model update, imagination, actor-critic
    metrics = learner.pretrain_vae(replay)     # the three pretraining updates (docs/spec.md)
    action = learner.act(obs)                  # the policy in the real env

Each step samples its batch from the replay buffer (NumPy) and runs one tf.function with a
fixed input signature, so nothing retraces after the first call. Every random op inside takes a
stateless seed split from the learner's tf.random.Generator, which the checkpoint holds: a resumed
run draws the same seeds as an uninterrupted one.
"""

import numpy as np
import tensorflow as tf

from twm_tf import acting
from twm_tf import config as config_lib
from twm_tf import distribute
from twm_tf import imagination
from twm_tf import precision
from twm_tf import seeding
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.replay import buffer as replay_lib


def parts(*owners) -> tuple[dict, dict]:
    """The models and optimizers of `owners` (each says what it holds in `checkpointed()`).

    Returns two dicts by the names a checkpoint keys them with (run/checkpoint.py).
    """
    models, optimizers = {}, {}
    for owner in owners:
        owner_models, owner_optimizers = owner.checkpointed()
        models.update(owner_models)
        optimizers.update(owner_optimizers)
    return models, optimizers


class Learner:
    """The world model and actor-critic of one run, in config.precision, with seeded weights."""

    def __init__(self, config: config_lib.Config, num_actions: int):
        self.config = config
        self.num_actions = num_actions
        self.replicas = distribute.Replicas(config.replicas)
        with (
            self.replicas.scope(),
            precision.policy(config.precision),
            seeding.keras_weights(config.seed),
        ):
            self.world_model = world_model_lib.WorldModel(config, num_actions)
            self.world_model.build()
            self.actor_critic = actor_critic.ActorCritic(config, num_actions)
        # The four Keras models and their optimizers by name, as the checkpoint keys them.
        self.models, self.optimizers = parts(self.world_model, self.actor_critic)
        self.generator = tf.random.Generator.from_seed(seeding.derive(config.seed, "tf"))
        self._compile()

    def seed(self) -> tf.Tensor:
        """A fresh stateless seed [2] int64 from the learner's generator."""
        return self.generator.make_seeds(1)[:, 0]

    # ----------------------------------------------------------------- one update each

    def train(self, replay: replay_lib.ReplayBuffer) -> dict:
        """One main-loop train step on N balanced windows and M restart observations."""
        config = self.config
        batch = replay.sample(config.wm_batch, world_model_lib.replay_steps(config))
        restart_obs = replay.sample_observations(config.imag_starts)
        return self._train_step(world_model_lib.Batch.from_replay(batch), restart_obs, self.seed())

    def pretrain_vae(self, replay: replay_lib.ReplayBuffer) -> dict:
        """One VAE update on single uniformly sampled observations."""
        frames = replay.sample_observations(self.config.pretrain_obs_batch)
        return self._pretrain_obs(frames, self.seed())

    def pretrain_dynamics(self, replay: replay_lib.ReplayBuffer) -> dict:
        """One dynamics update (VAE frozen) on uniformly sampled windows."""
        steps = world_model_lib.replay_steps(self.config)
        batch = replay.sample_uniform(self.config.wm_batch, steps)
        return self._pretrain_dyn(world_model_lib.Batch.from_replay(batch), self.seed())

    def pretrain_actor_critic(self, replay: replay_lib.ReplayBuffer) -> dict:
        """One critic update on real encoded sequences, the actor trained on entropy only."""
        batch = replay.sample_uniform(self.config.imag_starts, self.config.horizon)
        return self._pretrain_ac(world_model_lib.Batch.from_replay(batch), self.seed())

    def act(self, obs: np.ndarray) -> int:
        """An action sampled from the policy on one observation [stack, size, size] uint8."""
        return int(self._act(obs[None]))

    @property
    def policy_logits(self) -> acting.Logits:
        """frames [B, stack, size, size] uint8 -> action logits [B, A] (for evaluation)."""
        return self._policy_logits

    def tracing_count(self) -> int:
        """Traces of the compiled steps so far; constant after each step's first call."""
        steps = (self._train_step, self._pretrain_obs, self._pretrain_dyn, self._pretrain_ac)
        return sum(step.experimental_get_tracing_count() for step in steps)

    # ----------------------------------------------------------------- one replica's part

    def actor_critic_gradients(
        self, latents: world_model_lib.Latents, restart_obs: tf.Tensor, seed: tf.Tensor
    ):
        """One replica's imagination from its windows' latents, and its actor-critic gradients.

        Args:
          latents: from WorldModel.gradients on this replica's windows.
          restart_obs: [M / replicas, stack, size, size] uint8 observations to restart from; as
            many rollouts start from the latents.
          seed: [2] stateless seed.

        Returns:
          (ActorCriticGradients, metrics).
        """
        config, wm, ac = self.config, self.world_model, self.actor_critic
        starts_seed, rollout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
        # One rollout per restart observation: M / replicas of them on each replica.
        starts = imagination.select_starts(latents, restart_obs.shape[0], starts_seed)
        trajectory, gradients, metrics = imagination.rollout_and_gradients(
            wm.dynamics, ac, starts, restart_obs, wm.observation.encode, rollout_seed, config
        )
        metrics["imagination/reward_mean"] = tf.reduce_mean(trajectory.rewards)
        metrics["imagination/discount_mean"] = tf.reduce_mean(trajectory.discounts)
        metrics["imagination/restarts"] = tf.reduce_mean(tf.cast(trajectory.dones, tf.float32))
        return gradients, metrics

    def real_sequences(self, batch: world_model_lib.Batch, seed: tf.Tensor) -> dict:
        """Actor-critic pretraining's inputs from real windows [B, H + 1]: sampled latents z
        [B, H + 1, V, C], and tanh rewards, discounts and dones [B, H] (the last step has no
        successor to bootstrap into: its reward and discount go)."""
        z = distributions.sample_latent(self.world_model.observation.encode(batch.frames), seed)
        discounts = self.config.gamma * (1.0 - tf.cast(batch.terminated, tf.float32))
        return {
            "z": z,
            "rewards": tf.tanh(batch.rewards[:, :-1]),
            "discounts": discounts[:, :-1],
            "dones": batch.dones[:, :-1],
        }

    # ----------------------------------------------------------------- compiled steps

    def _compile(self) -> None:
        """Wraps every step in a tf.function with a fixed input signature."""
        config, wm = self.config, self.world_model
        size, stack = config.frame_size, config.frame_stack
        self._seed_spec = tf.TensorSpec([2], tf.int64)
        self._window = world_model_lib.batch_signature(
            config, config.wm_batch, world_model_lib.window_length(config)
        )
        self._train_step = self._compile_train_step()
        self._compile_pretraining()
        policy = acting.policy_function(wm.observation, self.actor_critic.actor)

        @tf.function(input_signature=[tf.TensorSpec([1, stack, size, size], tf.uint8)])
        def act(frames):
            # The seed is drawn in the graph, from the stream `seed()` reads: eagerly, its ~10
            # ops cost a fifth of an acting step.
            return policy(frames, self.generator.make_seeds(1)[:, 0])[0]

        self._act = act
        self._policy_logits = acting.policy_logits(wm.observation, self.actor_critic.actor)

    def _compile_train_step(self):
        config, wm, ac = self.config, self.world_model, self.actor_critic
        obs_spec = tf.TensorSpec(
            [config.imag_starts, config.frame_stack, config.frame_size, config.frame_size],
            tf.uint8,
        )
        replicas = self.replicas
        shard = distribute.shard
        seed_of = distribute.replica_seed

        @tf.function(
            input_signature=[self._window, obs_spec, self._seed_spec],
            jit_compile=config.jit_compile,
        )
        def train_step(batch, restart_obs, seed):
            wm_seed, ac_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
            # Each replica's gradients are averaged before they are applied (once, mirrored).
            gradients, metrics, latents = replicas.run(
                lambda b, s: wm.gradients(tf.nest.map_structure(shard, b), seed_of(s)),
                batch,
                wm_seed,
            )
            metrics = replicas.mean(metrics)
            metrics.update(wm.apply(replicas.mean(gradients)))
            # Imagination starts from the updated world model, as in the paper.
            gradients, ac_metrics = replicas.run(
                lambda z, o, s: self.actor_critic_gradients(z, shard(o), seed_of(s)),
                latents,
                restart_obs,
                ac_seed,
            )
            metrics.update(replicas.mean(ac_metrics))
            metrics.update(ac.apply(replicas.mean(gradients)))
            return metrics

        return train_step

    def _compile_pretraining(self) -> None:
        config, wm, ac = self.config, self.world_model, self.actor_critic
        jit, seed_spec = config.jit_compile, self._seed_spec
        size, stack = config.frame_size, config.frame_stack
        pretrain_obs_spec = tf.TensorSpec([config.pretrain_obs_batch, stack, size, size], tf.uint8)

        @tf.function(input_signature=[pretrain_obs_spec, seed_spec], jit_compile=jit)
        def pretrain_obs(frames, seed):
            return wm.observation_step(frames, seed)

        @tf.function(input_signature=[self._window, seed_spec], jit_compile=jit)
        def pretrain_dyn(batch, seed):
            return wm.dynamics_step(batch, seed)

        ac_window = world_model_lib.batch_signature(config, config.imag_starts, config.horizon + 1)

        @tf.function(input_signature=[ac_window, seed_spec], jit_compile=jit)
        def pretrain_ac(batch, seed):
            return ac.update(**self.real_sequences(batch, seed), actions=None, entropy_only=True)

        self._pretrain_obs = pretrain_obs
        self._pretrain_dyn = pretrain_dyn
        self._pretrain_ac = pretrain_ac

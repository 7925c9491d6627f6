"""Tests of the imagination rollout against a slow full-recompute reference."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import imagination
from twm_tf import world_model as world_model_lib
from twm_tf.dev import testing
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import dynamics

NUM_ACTIONS = 3


def _latents(config, n, length, seed=0):
    """Random actions/rewards/dones; z of window step (row, col) spells the index in base C."""
    rng = np.random.default_rng(seed)
    index = (np.arange(n * length) + seed).reshape(n, length, 1)
    classes = (
        index // config.latent_classes ** np.arange(config.latent_vars) % config.latent_classes
    )
    return world_model_lib.Latents(
        z=tf.constant(np.eye(config.latent_classes, dtype=np.float32)[classes]),
        actions=tf.constant(rng.integers(0, NUM_ACTIONS, [n, length]), tf.int32),
        rewards=tf.constant(np.tanh(rng.standard_normal([n, length])), tf.float32),
        dones=tf.constant(rng.random([n, length]) < 0.2),
    )


def _pool(latents):
    """Restart observations (row ids as uint8 frames) and an encoder that maps row i to logits
    peaked at pool state i, so a restarted state shows which row it came from."""
    states = latents.z.numpy()[:, 0]  # 4 distinct states
    obs = np.arange(len(states), dtype=np.uint8).reshape(-1, 1, 1, 1)

    def encode(frames):
        return 50.0 * tf.gather(tf.constant(states), tf.cast(frames[:, 0, 0, 0], tf.int32))

    return states, tf.constant(obs), encode


def _reference(model, actor, starts, restart_obs, encode, seed, config):
    """Recomputes the whole imagined sequence with the full-window model at every step."""
    context_z, context_action, context_reward, context_done, z = starts
    horizon = config.horizon
    seeds = tf.random.experimental.stateless_split(seed, num=4 * horizon)
    zs, actions, rewards, dones = [context_z], [context_action], [context_reward], [context_done]
    product = tf.ones([z.shape[0]])
    records = []
    for t in range(config.horizon):
        action = distributions.sample_actions(actor(z), seeds[3 * t])
        zs.append(z)
        actions.append(action)
        # The reward and done of step t are not inputs of its own prediction (read at a_t).
        out = model(
            tf.stack(zs, 1),
            tf.stack(actions, 1),
            tf.stack([*rewards, tf.zeros_like(context_reward)], 1),
            tf.stack([*dones, tf.zeros_like(context_done)], 1),
        )
        next_logits, reward = out.next_logits[:, -1], out.reward[:, -1]
        discount = tf.sigmoid(out.discount_logit[:, -1])
        next_z = distributions.sample_latent(next_logits, seeds[3 * t + 1])
        product *= discount
        done = product < config.restart_threshold
        records.append((action, reward, discount, done))
        rewards.append(reward)
        dones.append(done)
        pick = tf.random.stateless_uniform(
            [z.shape[0]], seeds[3 * t + 2], maxval=len(restart_obs), dtype=tf.int32
        )
        restart_z = distributions.sample_latent(
            encode(tf.gather(restart_obs, pick)), seeds[3 * horizon + t]
        )
        z = tf.where(done[:, None, None], restart_z, next_z)
        product = tf.where(done, tf.ones_like(product), product)
    return zs[1:] + [z], records


class ImaginationTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        # Memory longer than the rollout, so the full-window reference sees every step; a
        # restart threshold that fires after ~2 predicted discounts of 0.99.
        self.config = config_lib.debug(horizon=5, memory_steps=8, restart_threshold=0.985)
        self.model = dynamics.DynamicsModel.from_twm_config(self.config, NUM_ACTIONS)
        self.actor = actor_critic.Actor.from_twm_config(self.config, NUM_ACTIONS)
        self.actor(tf.zeros([1, self.config.latent_vars, self.config.latent_classes]))

    def test_select_starts_pairs_context_with_next_step(self):
        config = self.config
        latents = _latents(config, n=4, length=6)  # 4 trained steps (1..4) per row
        starts = imagination.select_starts(latents, 16, tf.constant([3, 4], tf.int64))
        context_z, context_action, _, _, start_z = (s.numpy() for s in starts)
        z = latents.z.numpy()
        found = set()
        for m in range(16):
            (row, col), *_ = np.argwhere(np.all(z == start_z[m], axis=(2, 3)))
            self.assertBetween(col, 1, 4)  # starts are the trained steps 1..l
            np.testing.assert_array_equal(context_z[m], z[row, col - 1])
            self.assertEqual(context_action[m], latents.actions.numpy()[row, col - 1])
            found.add((row, col))
        self.assertLen(found, 16)  # without replacement

    @parameterized.parameters(False, True)
    def test_rollout_equals_full_recompute_reference(self, jit_compile):
        # jit_compile=True takes the static-shape path (the whole pool encoded once); without it
        # only the drawn rows are encoded. Both must give the reference's states.
        config = self.config.replace(jit_compile=jit_compile)
        latents = _latents(config, n=4, length=5)
        seed = tf.constant([7, 8], tf.int64)
        starts = imagination.select_starts(latents, 6, seed)
        states, restart_obs, encode = _pool(latents)  # a pool of 4 distinct states, 6 rollouts
        trajectory = tf.function(imagination.rollout)(
            self.model, self.actor, starts, restart_obs, encode, seed, config
        )
        zs, records = _reference(self.model, self.actor, starts, restart_obs, encode, seed, config)
        action, reward, discount, done = (np.stack(x, 1) for x in zip(*records))
        self.assertTrue(done.any(), "the test must exercise restarts")
        self.assertAllClose(trajectory.z, np.stack(zs, 1))
        self.assertAllEqual(trajectory.actions, action)
        self.assertAllClose(trajectory.rewards, reward, atol=1e-5)
        self.assertAllClose(trajectory.discounts, discount, atol=1e-5)
        self.assertAllEqual(trajectory.dones, done)
        restarts = np.concatenate([starts.context_done.numpy()[:, None], done[:, :-1]], axis=1)
        self.assertAllEqual(trajectory.restarts, restarts)
        # Every restarted state comes from the pool.
        restarted = trajectory.z.numpy()[:, 1:][done]
        in_pool = (restarted[:, None] == states[None]).all(axis=(2, 3)).any(axis=1)
        self.assertTrue(in_pool.all())

    @parameterized.parameters(False, True)
    def test_recorded_actor_passes_give_the_update_s_gradients(self, jit_compile):
        config = self.config.replace(jit_compile=jit_compile)
        agent = actor_critic.ActorCritic(config, NUM_ACTIONS)
        latents = _latents(config, n=4, length=5)
        _, restart_obs, encode = _pool(latents)
        seed = tf.constant([5, 6], tf.int64)
        starts = imagination.select_starts(latents, 6, seed)

        @tf.function(jit_compile=jit_compile)
        def both():
            with agent.recording_actor() as tape:
                trajectory = imagination.rollout(
                    self.model, agent.actor, starts, restart_obs, encode, seed, config
                )
            reused, _ = agent.gradients(**trajectory._asdict(), policy_tape=tape)
            fresh, _ = agent.gradients(**trajectory._asdict())  # runs the actor again on z
            return trajectory, reused, fresh

        trajectory, reused, fresh = both()
        self.assertAllClose(trajectory.logits, agent.actor(trajectory.z[:, :-1]), atol=1e-6)
        self.assertAllClose(reused, fresh, rtol=1e-5, atol=1e-7)
        self.assertTrue(all(tf.reduce_any(g != 0) for g in reused.actor.grads))

    def test_recording_watches_only_the_actor(self):
        agent = actor_critic.ActorCritic(self.config, NUM_ACTIONS)
        latents = _latents(self.config, n=4, length=5)
        _, restart_obs, encode = _pool(latents)
        seed = tf.constant([5, 6], tf.int64)
        with agent.recording_actor() as tape:
            imagination.rollout(
                self.model,
                agent.actor,
                imagination.select_starts(latents, 6, seed),
                restart_obs,
                encode,
                seed,
                self.config,
            )
        watched = {v.ref() for v in tape.watched_variables()}
        self.assertEqual(watched, {v.value.ref() for v in agent.actor.trainable_variables})

    def test_rollout_traces_once(self):
        config = self.config
        rollout = tf.function(imagination.rollout)
        _, restart_obs, encode = _pool(_latents(config, n=4, length=5))
        for i in range(3):
            latents = _latents(config, n=4, length=5, seed=i)
            seed = tf.constant([i, 0], tf.int64)
            starts = imagination.select_starts(latents, 6, seed)
            rollout(self.model, self.actor, starts, restart_obs, encode, seed, config)
        self.assertEqual(rollout.experimental_get_tracing_count(), 1)


class _RewardedActionWorld:
    """A fixed toy world with the rollout's dynamics API: reward 1 for action 2, else 0."""

    def __init__(self, config):
        self.logits = tf.zeros([config.latent_vars, config.latent_classes])

    def prefill(self, z, actions, rewards, dones):
        return None, tf.zeros([z.shape[0]])

    def step(self, cache, z, action, prev_reward, reset):
        batch = tf.shape(action)[0]
        output = dynamics.DynamicsOutput(
            next_logits=tf.tile(self.logits[None], [batch, 1, 1]),
            reward=tf.cast(action == 2, tf.float32),
            discount_logit=tf.fill([batch], 4.6),  # gamma ~ 0.99
            attention=None,
        )
        return output, cache


class PolicyLearningTest(testing.TestCase):
    def test_actor_learns_the_rewarded_action_in_imagination(self):
        config = config_lib.debug(horizon=4, actor_lr=3e-3, critic_lr=3e-3)
        world = _RewardedActionWorld(config)
        agent = actor_critic.ActorCritic(config, NUM_ACTIONS)
        latents = _latents(config, n=4, length=5)
        _, restart_obs, encode = _pool(latents)

        @tf.function
        def train(seed):
            seeds = tf.random.experimental.stateless_split(seed, num=2)
            starts = imagination.select_starts(latents, config.imag_starts, seeds[0])
            trajectory = imagination.rollout(
                world, agent.actor, starts, restart_obs, encode, seeds[1], config
            )
            return agent.update(**trajectory._asdict())

        for i in range(300):
            train(tf.constant([i, 1], tf.int64))
        probs = tf.nn.softmax(agent.actor(latents.z), axis=-1).numpy()
        self.assertGreater(probs[..., 2].mean(), 0.9)


if __name__ == "__main__":
    absltest.main()

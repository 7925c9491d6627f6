"""The data-parallel train step on 2 logical CPUs equals the single-device step it stands for."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import distribute
from twm_tf import learner as learner_lib
from twm_tf import world_model as world_model_lib
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.replay import buffer as replay_lib

REPLICAS = 2


def _config(replicas: int) -> config_lib.Config:
    # Dropout off: Keras draws dropout masks per replica, which no single-device step reproduces.
    return config_lib.debug(
        game="Breakout", dyn_dropout=0.0, wm_batch=8, imag_starts=8, replicas=replicas
    )


def _weights(learner: learner_lib.Learner) -> list[np.ndarray]:
    """Every weight and optimizer slot, mirrored copies read from replica 0."""
    models = [v.numpy() for m in learner.models.values() for v in m.variables]
    slots = [v.numpy() for o in learner.optimizers.values() for v in o.variables]
    return models + slots


def _halves(x):
    return [x[: len(x) // 2], x[len(x) // 2 :]]


def _mean(structures):
    return tf.nest.map_structure(lambda *values: tf.add_n(values) / len(values), *structures)


class DistributedTrainStepTest(testing.TestCase):
    def test_equals_the_single_device_step_on_the_global_batch(self):
        single = learner_lib.Learner(_config(1), num_actions=4)
        mirrored = learner_lib.Learner(_config(REPLICAS), num_actions=4)
        self.assertEqual(mirrored.replicas.strategy.num_replicas_in_sync, REPLICAS)
        for name, model in single.models.items():
            mirrored.models[name].set_weights(model.get_weights())

        config = single.config
        replay = replay_lib.ReplayBuffer(capacity=400, tau=config.replay_tau, seed=0)
        testdata.add_to(replay, testdata.load("Breakout"))
        raw = replay.sample(config.wm_batch, world_model_lib.replay_steps(config))
        batch = world_model_lib.Batch.from_replay(raw)
        restart_obs = tf.constant(replay.sample_observations(config.imag_starts))
        seed = tf.constant([3, 4], tf.int64)

        metrics = mirrored._train_step(batch, restart_obs, seed)

        # The same step on one device, by hand: shard r of the batch with its replica's seed,
        # gradients averaged over the shards, applied once; then the same for imagination.
        wm, ac = single.world_model, single.actor_critic
        wm_seed, ac_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
        shards = zip(*(_halves(x) for x in batch), strict=True)
        fold = tf.random.experimental.stateless_fold_in
        parts = [
            wm.gradients(world_model_lib.Batch(*shard), fold(wm_seed, r))
            for r, shard in enumerate(shards)
        ]
        wm.apply(_mean([gradients for gradients, _, _ in parts]))
        ac_parts = [
            single.actor_critic_gradients(latents, obs, fold(ac_seed, r))
            for r, ((_, _, latents), obs) in enumerate(zip(parts, _halves(restart_obs)))
        ]
        ac.apply(_mean([gradients for gradients, _ in ac_parts]))

        expected, actual = _weights(single), _weights(mirrored)
        self.assertLen(actual, len(expected))
        for want, got in zip(expected, actual, strict=True):
            self.assertAllClose(want, got, rtol=2e-5, atol=2e-6)
        # The step did move every network, and the metrics are the replicas' mean.
        self.assertGreater(float(metrics["dyn/grad_norm"]), 0.0)
        self.assertAllClose(
            metrics["dyn/loss"], np.mean([float(m["dyn/loss"]) for _, m, _ in parts]), rtol=1e-5
        )

    def test_mirrored_copies_stay_equal_and_steps_trace_once(self):
        learner = learner_lib.Learner(_config(REPLICAS), num_actions=4)
        replay = replay_lib.ReplayBuffer(capacity=400, tau=20.0, seed=0)
        testdata.add_to(replay, testdata.load("Breakout"))
        for _ in range(2):
            learner.train(replay)
        self.assertEqual(learner.tracing_count(), 1)
        for model in learner.models.values():
            for variable in model.trainable_variables:
                first, second = variable.value.values
                self.assertAllEqual(first, second, variable.path)

    def test_batch_must_split_evenly(self):
        with self.assertRaisesRegex(ValueError, "config.wm_batch must be a multiple of replicas=3"):
            config_lib.debug(replicas=3)


if __name__ == "__main__":
    distribute.strategy(REPLICAS)  # Splits the CPU before anything initializes TensorFlow.
    absltest.main()

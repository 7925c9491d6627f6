"""The learner builds seeded models in the configured precision without process-global effects."""

import random

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import learner as learner_lib
from twm_tf.dev import testing
from twm_tf.replay import buffer as replay_lib


def _random_replay(config: config_lib.Config, steps: int) -> replay_lib.ReplayBuffer:
    rng = np.random.default_rng(0)
    replay = replay_lib.ReplayBuffer(
        capacity=steps, frame_size=config.frame_size, stack=config.frame_stack, tau=20.0, seed=0
    )
    for i in range(steps):
        replay.add(
            obs_or_frame=rng.integers(0, 256, [config.frame_size] * 2, np.uint8),
            action=int(rng.integers(6)),
            reward=float(rng.normal()),
            terminated=False,
            truncated=False,
            is_first=i == 0,
        )
    return replay


def _weights(learner: learner_lib.Learner) -> list[np.ndarray]:
    return [v.numpy() for m in learner.models.values() for v in m.variables]


class LearnerTest(testing.TestCase):
    def test_equal_seeds_equal_weights_other_seeds_other_weights(self):
        config = config_lib.debug()
        a, b = learner_lib.Learner(config, 6), learner_lib.Learner(config, 6)
        c = learner_lib.Learner(config.replace(seed=1), 6)
        for x, y in zip(_weights(a), _weights(b)):
            np.testing.assert_array_equal(x, y)
        kernels = [(x, z) for x, z in zip(_weights(a), _weights(c)) if x.ndim == 2]
        self.assertTrue(all(not np.array_equal(x, z) for x, z in kernels))

    def test_building_leaves_no_global_trace(self):
        random.seed(123)
        expected_next = random.Random(123).random()
        learner = learner_lib.Learner(config_lib.debug(precision="mixed_bfloat16"), 6)
        self.assertEqual(keras.mixed_precision.global_policy().name, "float32")
        self.assertEqual(random.random(), expected_next)  # Python's stream is where it was.
        # Every layer keeps the policy it was built under: the world model computes in bfloat16
        # except its float32 output layers; the actor and critic stay float32 by design.
        for model in (learner.world_model.observation, learner.world_model.dynamics):
            for layer in model._flatten_layers():
                expected = "float32" if layer.name in ("final", "logits") else "mixed_bfloat16"
                self.assertEqual(layer.dtype_policy.name, expected, layer.name)
        self.assertEqual(learner.actor_critic.actor.dtype_policy.name, "float32")

    @parameterized.parameters(False, True)
    def test_steps_trace_once(self, jit_compile):
        # XLA needs static shapes everywhere, e.g. the imagination's restart encodings.
        config = config_lib.debug(
            wm_batch=2, imag_starts=3, pretrain_obs_batch=4, jit_compile=jit_compile
        )
        learner = learner_lib.Learner(config, 6)
        replay = _random_replay(config, steps=64)
        for _ in range(2):
            metrics = learner.train(replay)
        self.assertEqual(learner.tracing_count(), 1)
        self.assertTrue(all(np.isfinite(float(v)) for v in metrics.values()))


if __name__ == "__main__":
    absltest.main()

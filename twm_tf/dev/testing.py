"""Shared test base: seeded tf.test.TestCase with absl parameterization."""

import random

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic
from twm_tf.run import restore


class TestCase(tf.test.TestCase, parameterized.TestCase):
    """Seeds Python, NumPy and TensorFlow before every test so failures reproduce."""

    def setUp(self):
        super().setUp()
        random.seed(0)
        np.random.seed(0)
        tf.random.set_seed(0)
        tf.keras.utils.set_random_seed(0)


def ancestor_names(op: tf.Operation) -> set[str]:
    """Names of every graph op that op depends on, through data and control inputs."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent.name not in seen:
                seen.add(parent.name)
                stack.append(parent)
    return seen


def untrained_models(config: config_lib.Config, num_actions: int):
    """A built world model and an actor-critic with fresh weights, as a run starts them.

    Returns:
      (WorldModel, ActorCritic).
    """
    wm = world_model_lib.WorldModel(config, num_actions)
    wm.build()
    return wm, actor_critic.ActorCritic(config, num_actions)


def untrained_run(run_dir: str, config: config_lib.Config, num_actions: int) -> str:
    """Writes a run directory of untrained models (seed 0); returns its checkpoint prefix."""
    tf.keras.utils.set_random_seed(0)
    return restore.write_run(run_dir, config, *untrained_models(config, num_actions))

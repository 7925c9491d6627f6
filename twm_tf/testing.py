"""Shared test base: seeded tf.test.TestCase with absl parameterization."""

import random

import numpy as np
import tensorflow as tf
from absl.testing import parameterized


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

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

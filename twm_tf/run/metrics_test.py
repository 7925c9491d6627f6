"""Tests of the running metric means."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf.dev import testing
from twm_tf.run import metrics


class MeansTest(testing.TestCase):
    def test_means_over_updates_since_last_flush(self):
        means = metrics.Means()
        self.assertFalse(means)
        means.add({"a": 1.0, "b": tf.constant(10.0)})
        means.add({"a": np.float32(2.0), "b": tf.constant(20.0)})
        means.add({"a": 6.0})  # A metric missing from an update averages over its own count.
        self.assertTrue(means)
        self.assertEqual(means.flush(), {"a": 3.0, "b": 15.0})
        self.assertFalse(means)
        self.assertEqual(means.flush(), {})
        means.add({"a": 5.0})
        self.assertEqual(means.flush(), {"a": 5.0})


if __name__ == "__main__":
    absltest.main()

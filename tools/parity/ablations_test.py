"""The ablations' samplers draw the same distributions differently, and leave nothing behind."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from tools.parity import ablations
from twm_tf.dev import testing
from twm_tf.models import distributions
from twm_tf.ops import dropout


def _latent_frequencies(logits, seed):
    sample = distributions.sample_latent(logits, tf.constant(seed, tf.int64))
    return sample.numpy().mean(0)  # [V, C], over the draws


class AblationsTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        # 20,000 draws of 2 categoricals of 4 classes.
        probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]], np.float32)
        self.probs = probs
        self.logits = tf.constant(np.broadcast_to(np.log(probs), (20000, 2, 4)))

    def test_categorical_sampler_draws_the_latent_distribution_differently(self):
        gumbel = _latent_frequencies(self.logits, [1, 2])
        with ablations.applied("categorical_sampler"):
            categorical = _latent_frequencies(self.logits, [1, 2])
            actions = distributions.sample_actions(self.logits[:, 0], tf.constant([3, 4]))
        # Both within 4 standard errors of the probabilities, from different draws.
        tolerance = 4 * np.sqrt(self.probs * (1 - self.probs) / 20000)
        self.assertTrue(np.all(np.abs(gumbel - self.probs) <= tolerance))
        self.assertTrue(np.all(np.abs(categorical - self.probs) <= tolerance))
        self.assertNotAllClose(gumbel, categorical, atol=1e-6)
        counts = np.bincount(actions.numpy(), minlength=4) / 20000
        self.assertTrue(np.all(np.abs(counts - self.probs[0]) <= tolerance[0]))
        # Restored after the block.
        self.assertAllEqual(_latent_frequencies(self.logits, [1, 2]), gumbel)

    def test_keras_dropout_masks_at_the_rate_with_another_stream(self):
        tf.keras.utils.set_random_seed(0)
        layer = dropout.Dropout(0.1)
        ones = tf.ones([200000])
        ours = layer(ones, training=True).numpy()
        sixteen_bit = dropout.Dropout.call
        with ablations.applied("keras_dropout"):
            self.assertIsNot(dropout.Dropout.call, sixteen_bit)
            keras_mask = layer(ones, training=True).numpy()
        for out in (ours, keras_mask):
            self.assertAllClose(np.unique(out), [0.0, 1 / 0.9])
            self.assertAllClose((out == 0).mean(), 0.1, atol=4 * np.sqrt(0.09 / 200000))
        self.assertGreater(np.mean((ours == 0) != (keras_mask == 0)), 0.1)
        self.assertIs(dropout.Dropout.call, sixteen_bit)

    def test_unknown_name_names_the_flag(self):
        with self.assertRaisesRegex(ValueError, "--ablation"):
            with ablations.applied("fast"):
                pass


if __name__ == "__main__":
    absltest.main()

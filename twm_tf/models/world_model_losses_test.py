"""Hand-computed tests of the world model's losses, L_obs and L_dyn."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.models import dynamics
from twm_tf.models import world_model_losses as losses


def _entropy(probs):
    return -np.sum(probs * np.log(probs), axis=-1)


class ObservationLossTest(testing.TestCase):
    # Two observations of one 1x2 frame; two variables with four classes.
    FRAMES = np.array([[[[0, 255]]], [[[51, 102]]]], np.uint8)  # [0, 1] and [0.2, 0.4]
    RECONSTRUCTION = np.array([[[[0.5, 0.5]]], [[[0.2, 0.0]]]], np.float32)
    Q = np.array(
        [
            [[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]],
            [[0.4, 0.3, 0.2, 0.1], [0.9, 0.05, 0.03, 0.02]],
        ],
        np.float32,
    )
    P = np.array(
        [
            [[0.1, 0.2, 0.3, 0.4], [0.5, 0.3, 0.1, 0.1]],
            [[0.25, 0.25, 0.25, 0.25], [0.6, 0.2, 0.1, 0.1]],
        ],
        np.float32,
    )

    def _loss(self, config, prior=True):
        return losses.observation_loss(
            tf.constant(self.FRAMES),
            tf.constant(self.RECONSTRUCTION),
            tf.math.log(self.Q),
            tf.math.log(self.P) if prior else None,
            config,
        )

    def test_gaussian_nll(self):
        # Per observation 0.5 * (0.5^2 + 0.5^2) = 0.25 and 0.5 * (0^2 + 0.4^2) = 0.08.
        _, metrics = self._loss(config_lib.debug())
        self.assertAllClose(metrics["obs/recon"], (0.25 + 0.08) / 2)
        self.assertAllClose(metrics["obs/recon_mae"], (0.5 + 0.5 + 0.0 + 0.4) / 4)

    @parameterized.named_parameters(("active", 0.9, True), ("inactive", 0.1, False))
    def test_thresholded_entropy(self, threshold, active):
        _, metrics = self._loss(config_lib.debug(entropy_threshold_z=threshold))
        entropy = np.mean(np.sum(_entropy(self.Q), axis=-1))
        norm_entropy = entropy / (2 * math.log(4))  # about 0.77
        self.assertAllClose(metrics["obs/entropy"], entropy)
        self.assertAllClose(metrics["obs/norm_entropy"], norm_entropy)
        self.assertAllClose(metrics["obs/entropy_loss"], max(0.0, threshold - norm_entropy))
        self.assertEqual(float(metrics["obs/entropy_loss"]) > 0, active)

    def test_consistency_cross_entropy(self):
        _, metrics = self._loss(config_lib.debug())
        cross_entropy = np.mean(np.sum(-np.sum(self.P * np.log(self.Q), axis=-1), axis=-1))
        self.assertAllClose(metrics["obs/consistency"], cross_entropy)

    def test_consistency_is_the_released_codes_form(self):
        # One variable: q = (0.5, 0.5), p = (0.8, 0.2). The released code's -sum p log q = ln 2;
        # the paper's -sum q log p = -0.5 (ln 0.8 + ln 0.2) = 0.9163 would be another value.
        _, metrics = losses.observation_loss(
            self.FRAMES[:1],
            self.RECONSTRUCTION[:1],
            tf.math.log([[[0.5, 0.5]]]),
            tf.math.log([[[0.8, 0.2]]]),
            config_lib.debug(),
        )
        self.assertAllClose(metrics["obs/consistency"], math.log(2.0))
        self.assertNotAllClose(metrics["obs/consistency"], 0.9163, atol=0.1)

    def test_consistency_mask_excludes_steps(self):
        _, metrics = losses.observation_loss(
            tf.constant(self.FRAMES),
            tf.constant(self.RECONSTRUCTION),
            tf.math.log(self.Q),
            tf.math.log(self.P),
            config_lib.debug(),
            prior_mask=tf.constant([False, True]),
        )
        second_only = np.sum(-np.sum(self.P[1] * np.log(self.Q[1]), axis=-1))
        self.assertAllClose(metrics["obs/consistency"], second_only)

    def test_total_weights_the_terms(self):
        config = config_lib.debug(alpha1=3.0, alpha2=0.5, entropy_threshold_z=0.9)
        total, metrics = self._loss(config)
        expected = (
            metrics["obs/recon"]
            + 3.0 * metrics["obs/entropy_loss"]
            + 0.5 * metrics["obs/consistency"]
        )
        self.assertAllClose(total, expected)
        self.assertAllClose(metrics["obs/loss"], total)
        self.assertEqual(total.dtype, tf.float32)
        self.assertEqual(total.shape, ())

        total, metrics = self._loss(config, prior=False)
        self.assertNotIn("obs/consistency", metrics)
        self.assertAllClose(total, metrics["obs/recon"] + 3.0 * metrics["obs/entropy_loss"])

    def test_consistency_gradient_reaches_encoder_logits_only(self):
        config = config_lib.debug(alpha1=0.0)
        logits = tf.Variable(tf.math.log(self.Q))
        prior_logits = tf.Variable(tf.math.log(self.P))
        with tf.GradientTape(persistent=True) as tape:
            total, _ = losses.observation_loss(
                self.FRAMES, self.RECONSTRUCTION, logits, prior_logits, config
            )
            # A step whose own posterior is its target adds no gradient.
            own_target, _ = losses.observation_loss(
                self.FRAMES, self.RECONSTRUCTION, logits, logits, config
            )
        grad_logits, grad_prior = tape.gradient(total, [logits, prior_logits])
        self.assertIsNone(grad_prior)
        # d/dlogits of -sum_c p_c log softmax(logits)_c = q - p, averaged over the 2 observations.
        self.assertAllClose(grad_logits, config.alpha2 * (self.Q - self.P) / 2, atol=1e-7)
        self.assertAllClose(tape.gradient(own_target, logits), tf.zeros_like(logits), atol=1e-7)


class DynamicsLossTest(testing.TestCase):
    def test_matches_hand_computation(self):
        config = config_lib.debug(beta1=10.0, beta2=50.0, gamma=0.99)
        next_logits = np.array([[[[1.0, 0.0], [0.0, 0.0]], [[2.0, -1.0], [0.5, 0.5]]]], np.float32)
        target_logits = np.array([[[[0.0, 0.0], [3.0, 0.0]], [[1.0, 1.0], [0.0, 2.0]]]], np.float32)
        output = dynamics.DynamicsOutput(
            next_logits=next_logits,
            reward=np.array([[0.5, -0.2]], np.float32),
            discount_logit=np.array([[2.0, 0.0]], np.float32),
            attention=None,
        )
        rewards = np.array([[1.0, 0.0]], np.float32)
        terminated = np.array([[False, True]])
        dones = np.array([[False, True]])  # step 1's next latent is a reset: no target
        total, metrics = losses.dynamics_loss(
            output, target_logits, rewards, terminated, dones, config
        )

        def log_softmax(x):
            return x - np.log(np.exp(x).sum(-1, keepdims=True))

        q = np.exp(log_softmax(target_logits[0, 0]))
        latent = -(q * log_softmax(next_logits[0, 0])).sum()  # only t = 0 counts
        # Unit-variance Gaussian NLL, its constant 0.5 ln(2 pi) included.
        reward = (0.5 * 0.5**2 + 0.5 * 0.2**2) / 2 + 0.5 * math.log(2 * math.pi)
        # Bernoulli NLL with soft targets 0.99 (t = 0) and 0 (t = 1, terminal).
        p0, p1 = 1 / (1 + math.exp(-2.0)), 0.5
        discount = (-(0.99 * math.log(p0) + 0.01 * math.log(1 - p0)) - math.log(1 - p1)) / 2
        self.assertAllClose(metrics["dyn/latent"], latent)
        self.assertAllClose(metrics["dyn/reward"], reward)
        self.assertAllClose(metrics["dyn/discount"], discount)
        self.assertAllClose(total, latent + 10 * reward + 50 * discount)
        self.assertAllClose(metrics["dyn/loss"], total)


if __name__ == "__main__":
    absltest.main()

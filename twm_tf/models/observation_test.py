"""Tests for the observation model (VAE) and its loss."""

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.models import observation
from twm_tf.models import distributions


def _random_frames(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


def _entropy(probs):
    return -np.sum(probs * np.log(probs), axis=-1)


class ObservationModelTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.config = config_lib.debug()

    def test_paper_parameter_count(self):
        model = observation.ObservationModel(config_lib.atari100k())
        # conv 3,120 + 73,824 + 295,104 + 1,180,032; dense 786,944 + 262,656 + 525,312.
        self.assertEqual(model.encoder.count_params(), 3_126_992)
        # dense 787,200; transposed convs 3,686,592 + 460,896 + 165,936 + 6,916.
        self.assertEqual(model.decoder.count_params(), 5_107_540)
        self.assertEqual(model.count_params(), 8_234_532)

    @parameterized.parameters(((),), ((5,),), ((2, 3),))
    def test_shapes_with_any_leading_dims(self, leading):
        model = observation.ObservationModel(self.config)
        frames = _random_frames((*leading, 4, 64, 64))
        logits = model.encode(frames)
        self.assertEqual(logits.shape, (*leading, 4, 4))
        self.assertEqual(logits.dtype, tf.float32)
        reconstruction = model.decode(distributions.latent_mode(logits))
        self.assertEqual(reconstruction.shape, (*leading, 4, 64, 64))
        self.assertEqual(reconstruction.dtype, tf.float32)

    def test_static_shapes_in_graph_with_unknown_batch(self):
        model = observation.ObservationModel(self.config)

        @tf.function(input_signature=[tf.TensorSpec([None, 3, 4, 64, 64], tf.uint8)])
        def encode_decode(frames):
            logits = model.encode(frames)
            self.assertEqual(logits.shape.as_list(), [None, 3, 4, 4])
            reconstruction = model.decode(logits)
            self.assertEqual(reconstruction.shape.as_list(), [None, 3, 4, 64, 64])
            return reconstruction

        encode_decode(_random_frames((2, 3, 4, 64, 64)))

    def test_rejects_bad_inputs(self):
        model = observation.ObservationModel(self.config)
        with self.assertRaisesRegex(ValueError, "uint8"):
            model.encode(tf.zeros([2, 4, 64, 64], tf.float32))
        with self.assertRaisesRegex(ValueError, r"\[4, 64, 64\]"):
            model.encode(tf.zeros([2, 3, 64, 64], tf.uint8))
        with self.assertRaisesRegex(ValueError, r"\[4, 4\]"):
            model.decode(tf.zeros([2, 16]))

    def test_straight_through_gradients_reach_encoder(self):
        model = observation.ObservationModel(self.config)
        frames = _random_frames((3, 4, 64, 64))
        with tf.GradientTape() as tape:
            z = distributions.sample_latent(model.encode(frames), tf.constant([1, 2]))
            reconstruction = model.decode(z)
            loss = tf.reduce_mean(tf.square(reconstruction - tf.cast(frames, tf.float32) / 255.0))
        grads = tape.gradient(loss, model.encoder.trainable_variables)
        self.assertLen(grads, 12)  # 4 convs, 1 hidden and the logits layer, kernel and bias each.
        for variable, grad in zip(model.encoder.trainable_variables, grads, strict=True):
            self.assertIsNotNone(grad, variable.path)
            self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0, variable.path)


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
        return observation.observation_loss(
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
        _, metrics = observation.observation_loss(
            self.FRAMES[:1],
            self.RECONSTRUCTION[:1],
            tf.math.log([[[0.5, 0.5]]]),
            tf.math.log([[[0.8, 0.2]]]),
            config_lib.debug(),
        )
        self.assertAllClose(metrics["obs/consistency"], math.log(2.0))
        self.assertNotAllClose(metrics["obs/consistency"], 0.9163, atol=0.1)

    def test_consistency_mask_excludes_steps(self):
        _, metrics = observation.observation_loss(
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
            total, _ = observation.observation_loss(
                self.FRAMES, self.RECONSTRUCTION, logits, prior_logits, config
            )
            # A step whose own posterior is its target adds no gradient.
            own_target, _ = observation.observation_loss(
                self.FRAMES, self.RECONSTRUCTION, logits, logits, config
            )
        grad_logits, grad_prior = tape.gradient(total, [logits, prior_logits])
        self.assertIsNone(grad_prior)
        # d/dlogits of -sum_c p_c log softmax(logits)_c = q - p, averaged over the 2 observations.
        self.assertAllClose(grad_logits, config.alpha2 * (self.Q - self.P) / 2, atol=1e-7)
        self.assertAllClose(tape.gradient(own_target, logits), tf.zeros_like(logits), atol=1e-7)


class ObservationModelTrainingTest(testing.TestCase):
    def test_overfits_real_frames(self):
        # Pong and Breakout frames together: beating their mean image needs information in z.
        batch = []
        for game in testdata.GAMES:
            _wait_for(testdata.path(game))
            stacks = testdata.stacks(testdata.load(game))
            batch.append(stacks[np.linspace(0, len(stacks) - 1, 8).astype(int)])
        frames = tf.constant(np.concatenate(batch))  # [16, 4, 64, 64]
        pixels = frames.numpy() / 255.0
        mean_image_nll = 0.5 * np.mean(np.sum((pixels - pixels.mean(0)) ** 2, axis=(1, 2, 3)))
        config = config_lib.debug(
            encoder_channels=(8, 16, 32, 32),
            encoder_hidden=(64,),
            decoder_hidden=64,
            latent_vars=8,
            latent_classes=8,
        )
        model = observation.ObservationModel(config)
        optimizer = keras.optimizers.Adam(1e-3)
        generator = tf.random.Generator.from_seed(0)

        @tf.function
        def train_step():
            with tf.GradientTape() as tape:
                logits = model.encode(frames, training=True)
                z = distributions.sample_latent(logits, generator.make_seeds(1)[:, 0])
                reconstruction = model.decode(z, training=True)
                loss, metrics = observation.observation_loss(
                    frames, reconstruction, logits, None, config
                )
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return metrics["obs/recon"]

        first = float(train_step())
        for _ in range(300):
            last = float(train_step())
        self.assertLess(last, first / 5, f"recon {first:.1f} -> {last:.1f}")
        self.assertLess(
            last, mean_image_nll / 2, f"recon {last:.1f}, mean image {mean_image_nll:.1f}"
        )


def _wait_for(path, timeout=600.0):
    # The recordings are produced by testdata/record.py; wait for a concurrent recording.
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(5.0)


class EncoderRecomputeTest(testing.TestCase):
    def test_training_recomputes_with_the_same_values_and_gradients(self):
        encoder = observation.ObservationModel(config_lib.debug()).encoder
        frames = _random_frames((3, 4, 64, 64))

        @tf.function
        def run(frames, training):
            with tf.GradientTape() as tape:
                logits = encoder(frames, training=training)
                loss = tf.reduce_sum(logits * tf.random.stateless_normal(logits.shape, [1, 2]))
            return logits, tape.gradient(loss, encoder.trainable_variables)

        (logits, grads), (logits_re, grads_re) = run(frames, False), run(frames, True)
        self.assertAllClose(logits_re, logits, atol=1e-6)
        for g_re, g in zip(grads_re, grads, strict=True):
            self.assertAllClose(g_re, g, atol=1e-5)

        def convs(training):
            graph = run.get_concrete_function(frames, training).graph
            return len([op for op in graph.get_operations() if op.type == "Conv2D"])

        # The last encoder conv is a patch matmul; the other three run again for the gradient.
        self.assertEqual(convs(True), 2 * convs(False))


class ExecutionModeTest(testing.TestCase):
    def test_graph_and_xla_agree_with_eager(self):
        config = config_lib.debug()
        model = observation.ObservationModel(config)
        frames = _random_frames((2, 3, 4, 64, 64))
        prior_logits = tf.random.normal([2, 3, 4, 4])

        def forward(frames, seed, sample):
            logits = model.encode(frames)
            z = (
                distributions.sample_latent(logits, seed)
                if sample
                else distributions.latent_mode(logits)
            )
            reconstruction = model.decode(z)
            loss, metrics = observation.observation_loss(
                frames, reconstruction, logits, prior_logits, config
            )
            return logits, z, reconstruction, loss, metrics

        seed = tf.constant([4, 2])
        eager = forward(frames, seed, True)
        graph = tf.function(forward)(frames, seed, True)
        self.assertAllClose(eager, graph, rtol=1e-5, atol=1e-5)
        # XLA's Philox stream differs from the TF kernel's, so compare XLA on the mode.
        eager = forward(frames, seed, False)
        xla = tf.function(forward, jit_compile=True)(frames, seed, False)
        self.assertAllClose(eager, xla, rtol=1e-4, atol=1e-4)

    @parameterized.parameters(("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16"))
    def test_mixed_precision_keeps_logits_and_losses_float32(self, policy, compute_dtype):
        previous = keras.mixed_precision.global_policy()
        self.addCleanup(keras.mixed_precision.set_global_policy, previous)
        keras.mixed_precision.set_global_policy(policy)
        config = config_lib.debug()
        model = observation.ObservationModel(config)
        self.assertEqual(model.encoder.convs[0].compute_dtype, compute_dtype)
        self.assertEqual(model.decoder.output_layer.compute_dtype, compute_dtype)
        frames = _random_frames((2, 3, 4, 64, 64))
        logits = model.encode(frames)
        reconstruction = model.decode(distributions.sample_latent(logits, tf.constant([0, 0])))
        loss, metrics = observation.observation_loss(frames, reconstruction, logits, logits, config)
        self.assertEqual(logits.dtype, tf.float32)
        self.assertEqual(reconstruction.dtype, tf.float32)
        for value in [loss, *metrics.values()]:
            self.assertEqual(value.dtype, tf.float32)
            self.assertTrue(np.isfinite(value.numpy()))
        self.assertEqual({v.dtype for v in model.trainable_variables}, {"float32"})


if __name__ == "__main__":
    tf.test.main()

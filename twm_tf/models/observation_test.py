"""Tests for the observation model (VAE)."""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import seeding
from twm_tf.dev import testdata
from twm_tf.dev import testing
from twm_tf.models import distributions
from twm_tf.models import observation
from twm_tf.models import world_model_losses as losses


def _random_frames(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


class ObservationModelTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.config = config_lib.debug()

    def test_paper_parameter_count(self):
        model = observation.ObservationModel.from_twm_config(config_lib.atari100k())
        # conv 3,120 + 73,824 + 295,104 + 1,180,032; dense 786,944 + 262,656 + 525,312.
        self.assertEqual(model.encoder.count_params(), 3_126_992)
        # dense 787,200; transposed convs 3,686,592 + 460,896 + 165,936 + 6,916.
        self.assertEqual(model.decoder.count_params(), 5_107_540)
        self.assertEqual(model.count_params(), 8_234_532)

    def test_from_config_equals_explicit_hyperparameters(self):
        sizes = dict(
            frame_stack=2,
            frame_size=64,
            latent_vars=3,
            latent_classes=5,
            encoder_channels=(2, 3, 4, 5),
            encoder_hidden=(6, 7),
            decoder_hidden=8,
            decoder_channels=(5, 4, 3),
        )
        with seeding.keras_weights(1):
            model = observation.ObservationModel.from_twm_config(config_lib.debug(**sizes))
        with seeding.keras_weights(1):
            explicit = observation.ObservationModel(**sizes)
        self.assertEqual(explicit.frame_shape, (2, 64, 64))
        self.assertEqual(explicit.latent_shape, (3, 5))
        self.assertEqual([conv.filters for conv in explicit.encoder.convs], [2, 3, 4, 5])
        self.assertEqual(explicit.decoder.output_layer.filters, 2)
        self.assertLen(model.weights, len(explicit.weights))
        for a, b in zip(model.weights, explicit.weights, strict=True):
            self.assertEqual(a.path, b.path)
            self.assertAllEqual(a, b)
        frames = _random_frames((3, 2, 64, 64))
        self.assertEqual(explicit.decode(explicit.encode(frames)).shape, (3, 2, 64, 64))

    @parameterized.parameters(((),), ((5,),), ((2, 3),))
    def test_shapes_with_any_leading_dims(self, leading):
        model = observation.ObservationModel.from_twm_config(self.config)
        frames = _random_frames((*leading, 4, 64, 64))
        logits = model.encode(frames)
        self.assertEqual(logits.shape, (*leading, 4, 4))
        self.assertEqual(logits.dtype, tf.float32)
        reconstruction = model.decode(distributions.latent_mode(logits))
        self.assertEqual(reconstruction.shape, (*leading, 4, 64, 64))
        self.assertEqual(reconstruction.dtype, tf.float32)

    def test_static_shapes_in_graph_with_unknown_batch(self):
        model = observation.ObservationModel.from_twm_config(self.config)

        @tf.function(input_signature=[tf.TensorSpec([None, 3, 4, 64, 64], tf.uint8)])
        def encode_decode(frames):
            logits = model.encode(frames)
            self.assertEqual(logits.shape.as_list(), [None, 3, 4, 4])
            reconstruction = model.decode(logits)
            self.assertEqual(reconstruction.shape.as_list(), [None, 3, 4, 64, 64])
            return reconstruction

        encode_decode(_random_frames((2, 3, 4, 64, 64)))

    def test_rejects_bad_inputs(self):
        model = observation.ObservationModel.from_twm_config(self.config)
        with self.assertRaisesRegex(ValueError, "uint8"):
            model.encode(tf.zeros([2, 4, 64, 64], tf.float32))
        with self.assertRaisesRegex(ValueError, r"\[4, 64, 64\]"):
            model.encode(tf.zeros([2, 3, 64, 64], tf.uint8))
        with self.assertRaisesRegex(ValueError, r"\[4, 4\]"):
            model.decode(tf.zeros([2, 16]))

    def test_straight_through_gradients_reach_encoder(self):
        model = observation.ObservationModel.from_twm_config(self.config)
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
        model = observation.ObservationModel.from_twm_config(config)
        optimizer = keras.optimizers.Adam(1e-3)
        generator = tf.random.Generator.from_seed(0)

        @tf.function
        def train_step():
            with tf.GradientTape() as tape:
                logits = model.encode(frames, training=True)
                z = distributions.sample_latent(logits, generator.make_seeds(1)[:, 0])
                reconstruction = model.decode(z, training=True)
                loss, metrics = losses.observation_loss(
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
        encoder = observation.ObservationModel.from_twm_config(config_lib.debug()).encoder
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
        model = observation.ObservationModel.from_twm_config(config)
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
            loss, metrics = losses.observation_loss(
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
        model = observation.ObservationModel.from_twm_config(config)
        self.assertEqual(model.encoder.convs[0].compute_dtype, compute_dtype)
        self.assertEqual(model.decoder.output_layer.compute_dtype, compute_dtype)
        frames = _random_frames((2, 3, 4, 64, 64))
        logits = model.encode(frames)
        reconstruction = model.decode(distributions.sample_latent(logits, tf.constant([0, 0])))
        loss, metrics = losses.observation_loss(frames, reconstruction, logits, logits, config)
        self.assertEqual(logits.dtype, tf.float32)
        self.assertEqual(reconstruction.dtype, tf.float32)
        for value in [loss, *metrics.values()]:
            self.assertEqual(value.dtype, tf.float32)
            self.assertTrue(np.isfinite(value.numpy()))
        self.assertEqual({v.dtype for v in model.trainable_variables}, {"float32"})


if __name__ == "__main__":
    tf.test.main()

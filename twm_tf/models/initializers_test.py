"""Per-layer initial weight statistics against the PyTorch rules of the released TWM code."""

import math

import numpy as np
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.dev import testing
from twm_tf.models import actor_critic
from twm_tf.models import dynamics
from twm_tf.models import initializers
from twm_tf.models import observation

NUM_ACTIONS = 18
SQRT2 = math.sqrt(2.0)


def _config() -> config_lib.Config:
    """Layers of a few thousand weights (tight statistics) that still build in about a second."""
    return config_lib.debug(
        encoder_channels=(16, 32, 32, 64),
        encoder_hidden=(256,),
        decoder_hidden=256,
        decoder_channels=(64, 32, 16),
        latent_vars=8,
        latent_classes=16,
        dyn_layers=2,
        dyn_width=128,
        dyn_heads=4,
        dyn_ffn=256,
        latent_head=(256,),
        scalar_head=(256,),
        ac_hidden=(256, 128),
    )


def _kaiming_bound(gain: float, fan_in: int) -> float:
    return gain * math.sqrt(3.0 / fan_in)


def _torch_default_bound(fan_in: int) -> float:
    return 1.0 / math.sqrt(fan_in)


class InitializerTestCase(testing.TestCase):
    def assertUniform(self, variable, bound: float, name: str = ""):
        """U(+-bound): no value beyond it, the largest close to it, std bound / sqrt 3, mean 0."""
        w = np.asarray(variable, np.float64).ravel()
        n = w.size
        msg = f"{name or variable.path}: {n} values"
        self.assertLessEqual(np.max(np.abs(w)), bound * (1 + 1e-6), msg)
        # P(max |w| < bound (1 - eps)) = (1 - eps)^n ~ exp(-10) for eps = 10 / n.
        self.assertGreaterEqual(np.max(np.abs(w)), bound * (1 - min(10.0 / n, 0.5)), msg)
        # The std of n uniform samples has a relative standard error of about 0.45 / sqrt(n).
        self.assertAllClose(np.std(w), bound / math.sqrt(3.0), rtol=max(0.03, 4 * 0.45 / n**0.5))
        self.assertLess(abs(np.mean(w)), 4 * bound / math.sqrt(3.0 * n), msg)

    def assertZero(self, variable):
        self.assertAllEqual(variable, np.zeros(variable.shape), msg=variable.path)

    def assertOrthogonal(self, kernel, gain: float):
        """Vectors along the smaller side of the [in, out] kernel: orthogonal, norm gain."""
        w = np.asarray(kernel, np.float64)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        self.assertAllClose(gram, gain**2 * np.eye(len(gram)), atol=1e-5, msg=kernel.path)


class ObservationModelInitTest(InitializerTestCase):
    def setUp(self):
        super().setUp()
        self.config = _config()
        self.model = observation.ObservationModel.from_twm_config(self.config)

    def test_encoder_is_kaiming_uniform_with_zero_biases(self):
        encoder = self.model.encoder
        channels = (self.config.frame_stack, *self.config.encoder_channels)
        for conv, in_channels in zip(encoder.convs, channels[:-1], strict=True):
            self.assertUniform(conv.kernel, _kaiming_bound(SQRT2, 4 * 4 * in_channels))
            self.assertZero(conv.bias)
        for layer in encoder.hidden:
            self.assertUniform(layer.kernel, _kaiming_bound(SQRT2, layer.kernel.shape[0]))
            self.assertZero(layer.bias)
        fan_in = self.config.encoder_hidden[-1]
        self.assertUniform(encoder.logits.kernel, _kaiming_bound(1.0, fan_in))
        self.assertZero(encoder.logits.bias)

    def test_decoder_dense_is_kaiming_uniform(self):
        hidden = self.model.decoder.hidden
        self.assertUniform(hidden.kernel, _kaiming_bound(SQRT2, self.config.latent_dim))
        self.assertZero(hidden.bias)

    def test_transposed_convs_keep_the_pytorch_default(self):
        decoder = self.model.decoder
        for layer in [*decoder.deconvs, decoder.output_layer]:
            kh, kw, out_channels, in_channels = layer.kernel.shape
            self.assertGreater(in_channels, out_channels)  # the convention below matters
            # PyTorch's ConvTranspose2d weight is [in, out, kh, kw]; its fan_in = out * kh * kw.
            bound = _torch_default_bound(out_channels * kh * kw)
            self.assertUniform(layer.kernel, bound)
            bias = np.asarray(layer.bias)
            self.assertLessEqual(np.max(np.abs(bias)), bound, layer.bias.path)
            self.assertGreater(np.std(bias), 0.0, layer.bias.path)
        self.assertUniform(decoder.deconvs[0].bias, _torch_default_bound(64 * 5 * 5))


class DynamicsModelInitTest(InitializerTestCase):
    def setUp(self):
        super().setUp()
        self.config = _config()
        self.model = dynamics.DynamicsModel.from_twm_config(self.config, NUM_ACTIONS)

    def test_embeddings(self):
        width = self.config.dyn_width
        latent = self.model.latent_embedding
        self.assertUniform(latent.kernel, _kaiming_bound(SQRT2, self.config.latent_dim))
        self.assertZero(latent.bias)
        reward = self.model.reward_embedding
        self.assertUniform(reward.kernel, _kaiming_bound(SQRT2, 1))
        self.assertZero(reward.bias)
        # nn.Embedding: N(0, 1).
        table = np.asarray(self.model.action_embedding.embeddings, np.float64)
        self.assertEqual(table.shape, (NUM_ACTIONS, width))
        n = table.size
        self.assertAllClose(np.std(table), 1.0, rtol=4 / math.sqrt(2 * n))
        self.assertLess(abs(np.mean(table)), 4 / math.sqrt(n))
        self.assertAllClose(np.mean(np.abs(table) > 1.0), 0.3173, atol=0.04)

    def test_action_tokens_start_larger_than_latent_tokens(self):
        z = tf.one_hot(
            tf.random.uniform([512, self.config.latent_vars], maxval=16, dtype=tf.int32), 16
        )
        latent = self.model.latent_embedding(tf.reshape(z, [512, -1]))
        actions = self.model.action_embedding(tf.range(NUM_ACTIONS))
        self.assertGreater(float(tf.math.reduce_std(actions)), 3 * tf.math.reduce_std(latent))

    def test_prediction_heads(self):
        gamma = self.config.gamma
        final_biases = {
            self.model.latent_head: 0.0,
            self.model.reward_head: 0.0,
            self.model.discount_head: math.log(gamma / (1 - gamma)),
        }
        for head, final_bias in final_biases.items():
            fan_in = self.config.dyn_width
            for layer in head.hidden:
                self.assertUniform(layer.kernel, _kaiming_bound(SQRT2, fan_in))
                self.assertZero(layer.bias)
                fan_in = layer.units
            self.assertUniform(head.final.kernel, _kaiming_bound(1.0, fan_in))
            self.assertAllClose(head.final.bias, np.full(head.final.bias.shape, final_bias))

    def test_transformer_layers_keep_the_pytorch_default(self):
        width, ffn = self.config.dyn_width, self.config.dyn_ffn
        transformer = self.model.transformer
        for block in transformer.blocks:
            attention = block.attention
            for projection in (attention.qkv, attention.position, attention.out):
                self.assertFalse(projection.use_bias)
                self.assertUniform(projection.kernel, _torch_default_bound(width))
            self.assertUniform(block.ffn_in.kernel, _torch_default_bound(width))
            self.assertUniform(block.ffn_in.bias, _torch_default_bound(width))
            self.assertUniform(block.ffn_out.kernel, _torch_default_bound(ffn))
            self.assertUniform(block.ffn_out.bias, _torch_default_bound(ffn))
            for norm in (block.attention_norm, block.ffn_norm):
                self.assertAllEqual(norm.gamma, np.ones(width))
                self.assertAllEqual(norm.beta, np.zeros(width))
        # xavier_uniform_ of [heads, head_dim]: U(+-sqrt(6 / (heads + head_dim))).
        heads = self.config.dyn_heads
        bound = math.sqrt(6.0 / (heads + width // heads))
        self.assertUniform(transformer.content_bias, bound)
        self.assertUniform(transformer.position_bias, bound)
        self.assertNotAllEqual(transformer.content_bias, transformer.position_bias)


class ActorCriticInitTest(InitializerTestCase):
    def test_orthogonal_with_zero_biases(self):
        config = _config()
        ac = actor_critic.ActorCritic(config, NUM_ACTIONS)
        for network in (ac.actor, ac.critic):
            *hidden, out = network._mlp.layers
            for layer in hidden:
                self.assertOrthogonal(layer.kernel, SQRT2)
                self.assertZero(layer.bias)
            self.assertOrthogonal(out.kernel, 1.0)
            self.assertZero(out.bias)
        # Not the identity: the first kernel [128, 256] has orthogonal rows of norm sqrt 2.
        first = np.asarray(ac.actor._mlp.layers[0].kernel)
        self.assertAllClose(np.linalg.norm(first, axis=1), np.full(128, SQRT2), atol=1e-5)


class InitializersTest(InitializerTestCase):
    def test_fresh_instances_draw_different_values(self):
        # Keras fixes an unseeded initializer's seed at construction: each layer needs its own.
        a = initializers.kaiming_uniform(1.0)((64, 64))
        b = initializers.kaiming_uniform(1.0)((64, 64))
        self.assertNotAllClose(a, b)

    def test_conv_transpose_fan_in_is_out_channels_times_kernel(self):
        kernel = initializers.torch_default_kernel()((6, 6, 4, 256))  # [kh, kw, out, in]
        self.assertUniform(kernel, 1.0 / math.sqrt(4 * 6 * 6), name="kernel")


if __name__ == "__main__":
    tf.test.main()

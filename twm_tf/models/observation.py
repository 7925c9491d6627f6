"""The observation model of TWM: a categorical VAE over stacked 64x64 grayscale frames."""

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.ops import activations
from twm_tf.ops import conv_forms
from twm_tf.models import distributions
from twm_tf.models import entropy as entropy_lib
from twm_tf.models import initializers
from twm_tf.ops import recompute

# Spatial sizes of the two conv stacks, fixed by the kernels and strides for 64x64 frames (valid
# padding): encoder 64 -> 31 -> 14 -> 6 -> 2, decoder 1 -> 5 -> 13 -> 30 -> 64.
_ENCODER_KERNEL = 4
_DECODER_KERNELS = (5, 5, 6, 6)


class Encoder(keras.Model):
    """Maps frame stacks to the logits of V categorical latents with C classes each.

    Four stride-2 convolutions (kernel 4, valid padding, SiLU after each) take 64x64 frames to 2x2;
    the flattened features pass through SiLU dense layers and a linear layer to V * C logits. The
    logits layer computes in float32 so they stay float32 under a mixed-precision policy. Weights
    are Kaiming-uniform (gain sqrt 2 before SiLU, 1 on the logits), biases zero, as in the original.
    """

    def __init__(self, config: config_lib.Config, name: str = "encoder"):
        super().__init__(name=name)
        self._config = config
        last = len(config.encoder_channels) - 1
        self.convs = [
            # The last conv (6x6 -> 2x2) is faster as one patch matmul (see conv_forms).
            (conv_forms.PatchConv2D if i == last else keras.layers.Conv2D)(
                channels,
                _ENCODER_KERNEL,
                strides=2,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name=f"conv_{i}",
            )
            for i, channels in enumerate(config.encoder_channels)
        ]
        self.flatten = keras.layers.Flatten(name="flatten")
        self.hidden = [
            keras.layers.Dense(
                width,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name=f"hidden_{i}",
            )
            for i, width in enumerate(config.encoder_hidden)
        ]
        self.logits = keras.layers.Dense(
            config.latent_dim,
            kernel_initializer=initializers.kaiming_uniform(initializers.LINEAR_GAIN),
            bias_initializer=initializers.zeros(),
            dtype="float32",
            name="logits",
        )
        self.build((None, config.frame_stack, config.frame_size, config.frame_size))

    def build(self, input_shape):
        # Variables exist right after construction (optimizers, checkpoints, parameter counts).
        shape = (input_shape[0], *input_shape[2:], input_shape[1])
        for layer in [*self.convs, self.flatten, *self.hidden, self.logits]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def _features(self, frames: tf.Tensor) -> tf.Tensor:
        """[N, S, 64, 64] uint8 -> [N, 2 * 2 * C4] flattened convolution features."""
        x = tf.cast(frames, self.compute_dtype) / 255.0
        x = tf.transpose(x, [0, 2, 3, 1])  # [N, 64, 64, S]: TF's CPU convs need channels-last.
        for conv in self.convs:
            x = conv(x)  # [N, 31, 31, C1] ... [N, 2, 2, C4]
        return self.flatten(x)

    def call(self, frames: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Encodes frames.

        Args:
            frames: [N, S, 64, 64] uint8 frame stacks.
            training: the backward pass will follow: keep less memory for it (no dropout or
                normalization, so the values do not change).

        Returns:
            [N, V, C] float32 logits.
        """
        # Training recomputes the convolutions' activations in the backward pass (see recompute).
        features = recompute.recompute(self._features) if training else self._features
        x = features(frames)
        for layer in self.hidden:
            x = layer(x)
        logits = self.logits(x)  # [N, V * C]
        return tf.reshape(logits, [-1, self._config.latent_vars, self._config.latent_classes])


def _transposed_conv(
    channels: int,
    kernel: int,
    activation: Callable[[tf.Tensor], tf.Tensor] | None,
    name: str,
    layer_class: type[keras.layers.Conv2DTranspose] = keras.layers.Conv2DTranspose,
) -> keras.layers.Conv2DTranspose:
    """A stride-2 transposed convolution with PyTorch's default ConvTranspose2d initialization."""
    return layer_class(
        channels,
        kernel,
        strides=2,
        activation=activation,
        kernel_initializer=initializers.torch_default_kernel(),
        # PyTorch's fan_in of the [in, out, kh, kw] weight: out * kh * kw.
        bias_initializer=initializers.torch_default_bias(channels * kernel * kernel),
        name=name,
    )


class Decoder(keras.Model):
    """Maps latents back to the mean of a unit-variance Gaussian over the frame stack.

    A SiLU dense layer feeds a 1x1 map to four stride-2 transposed convolutions (kernels 5, 5, 6, 6,
    valid padding, SiLU between) that grow it to 64x64 with frame_stack channels and a linear
    output. As in the original, the dense layer is Kaiming-uniform (gain sqrt 2, zero bias) and
    the transposed convolutions keep PyTorch's default, weights and biases U(+-1 / sqrt(fan_in))
    with fan_in = out_channels * kh * kw (the original's output bias of 0.5 is never applied).
    """

    def __init__(self, config: config_lib.Config, name: str = "decoder"):
        super().__init__(name=name)
        self._config = config
        self.hidden = keras.layers.Dense(
            config.decoder_hidden,
            activation=activations.silu,
            kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
            bias_initializer=initializers.zeros(),
            name="hidden",
        )
        self.reshape = keras.layers.Reshape((1, 1, config.decoder_hidden), name="reshape")
        channels = (*config.decoder_channels, config.frame_stack)
        self.deconvs = [
            _transposed_conv(
                c,
                kernel,
                activation=activations.silu,
                name=f"deconv_{i}",
                # The first one grows the 1x1 map: a plain matmul (see conv_forms).
                layer_class=conv_forms.PointTransposedConv2D
                if i == 0
                else keras.layers.Conv2DTranspose,
            )
            for i, (c, kernel) in enumerate(zip(channels[:-1], _DECODER_KERNELS[:-1], strict=True))
        ]
        self.output_layer = _transposed_conv(
            channels[-1],
            _DECODER_KERNELS[-1],
            activation=None,
            name="output",
            # frame_stack output channels vectorize poorly; see conv_forms.
            layer_class=conv_forms.SubPixelTransposedConv2D,
        )
        self.build((None, config.latent_vars, config.latent_classes))

    def build(self, input_shape):
        shape = (input_shape[0], input_shape[1] * input_shape[2])
        for layer in [self.hidden, self.reshape, *self.deconvs, self.output_layer]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Decodes latents.

        Args:
            z: [N, V, C] float latents (one-hot samples or modes).
            training: unused (no dropout or normalization); kept for the Keras convention.

        Returns:
            [N, S, 64, 64] float32 reconstruction mean in the [0, 1] pixel scale.
        """
        x = tf.reshape(z, [-1, self._config.latent_dim])
        x = self.reshape(self.hidden(x))  # [N, 1, 1, hidden]
        for deconv in self.deconvs:
            x = deconv(x)  # [N, 5, 5, D1], [N, 13, 13, D2], [N, 30, 30, D3]
        x = self.output_layer(x)  # [N, 64, 64, S]
        return tf.cast(tf.transpose(x, [0, 3, 1, 2]), tf.float32)


def _split_leading(x: tf.Tensor, inner_rank: int) -> tuple[tf.Tensor, tf.TensorShape]:
    """Returns the dynamic and static shapes of the leading dims before the `inner_rank` last."""
    return tf.shape(x)[: x.shape.rank - inner_rank], x.shape[: x.shape.rank - inner_rank]


def _restore_leading(
    y: tf.Tensor, leading: tf.Tensor, static: tf.TensorShape, inner: tuple[int, ...]
) -> tf.Tensor:
    y = tf.reshape(y, tf.concat([leading, inner], axis=0))
    y.set_shape(static.concatenate(inner))
    return y


class ObservationModel(keras.Model):
    """The VAE: an encoder q(z|o) over V categoricals of C classes and a Gaussian decoder p(o|z).

    `encode` and `decode` accept any number of leading dims ([B], [B, T], ...). Sampling and the
    loss are module-level functions (`sample_latent`, `latent_mode`, `observation_loss`).
    """

    def __init__(self, config: config_lib.Config, name: str = "observation_model"):
        super().__init__(name=name)
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        # Both parts build themselves; there is no call() for Keras to trace.
        self.built = True

    def encode(self, frames: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Returns the logits of q(z|o).

        Args:
            frames: [..., S, 64, 64] uint8 frame stacks.
            training: passed to the encoder.

        Returns:
            [..., V, C] float32 logits.

        Raises:
            ValueError: if frames are not uint8 or their trailing dims are not [S, 64, 64].
        """
        config = self.config
        frame_shape = (config.frame_stack, config.frame_size, config.frame_size)
        frames = tf.convert_to_tensor(frames)
        if frames.dtype != tf.uint8:
            raise ValueError(f"frames must be uint8 in [0, 255], got {frames.dtype}")
        if frames.shape.rank is None or not frames.shape[-3:].is_compatible_with(frame_shape):
            raise ValueError(f"frames must end in {list(frame_shape)}, got {frames.shape}")
        leading, static = _split_leading(frames, 3)
        logits = self.encoder(tf.reshape(frames, (-1, *frame_shape)), training=training)
        return _restore_leading(
            logits, leading, static, (config.latent_vars, config.latent_classes)
        )

    def decode(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Returns the mean of p(o|z), a unit-variance Gaussian over the pixels scaled to [0, 1].

        Args:
            z: [..., V, C] float latents.
            training: passed to the decoder.

        Returns:
            [..., S, 64, 64] float32 reconstruction (linear output, not clipped).

        Raises:
            ValueError: if the trailing dims of z are not [V, C].
        """
        config = self.config
        latent_shape = (config.latent_vars, config.latent_classes)
        z = tf.convert_to_tensor(z)
        if z.shape.rank is None or not z.shape[-2:].is_compatible_with(latent_shape):
            raise ValueError(f"z must end in {list(latent_shape)}, got {z.shape}")
        leading, static = _split_leading(z, 2)
        frames = self.decoder(tf.reshape(z, (-1, *latent_shape)), training=training)
        frame_shape = (config.frame_stack, config.frame_size, config.frame_size)
        return _restore_leading(frames, leading, static, frame_shape)


def observation_loss(
    frames: tf.Tensor,
    reconstruction: tf.Tensor,
    logits: tf.Tensor,
    prior_logits: tf.Tensor | None,
    config: config_lib.Config,
    prior_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The VAE loss of TWM (paper Eq. 7), averaged over all leading dims.

        L_obs = 0.5 * sum_pixels (o_hat - o)^2
              + alpha1 * max(0, Gamma_z - H(q(z|o)) / (V ln C))
              + alpha2 * sum_vars -sum_c sg(p_c) log q_c

    H(q) is summed over the V variables and averaged before it is normalized and thresholded.

    Consistency term: a deliberate choice. The paper's Eq. 7 (and docs/spec.md) write H(q, sg p) =
    -sum_c q_c log sg(p_c); twm-tf keeps the released code's -sum_c sg(p_c) log q_c, i.e. the
    stop-gradient prediction p(z_hat|h) is the target and the encoder's q(z|o) the model. Per
    categorical its gradient w.r.t. the encoder logits is q - sg(p) (times alpha2), that of a
    cross-entropy with target p: it pulls q toward the prediction, is bounded, and vanishes where
    p = q (a step whose own posterior stands in for the missing prediction adds no gradient). The
    paper's form would instead have gradient q_c * (E_q[log p] - log p_c), which involves log p:
    it moves q onto the classes p rates most likely (mode-seeking, nonzero even at q = p) and is
    unbounded where p_c -> 0.
    Steps without a prediction (a window's first step, the first step after an episode end) are
    excluded with `prior_mask`; the term averages over the remaining steps.

    Args:
        frames: [..., S, 64, 64] uint8 targets.
        reconstruction: [..., S, 64, 64] float decoder mean in the [0, 1] scale.
        logits: [..., V, C] float logits of q(z|o).
        prior_logits: [..., V, C] float logits of the dynamics prediction p(z_hat|h) for the same
            steps, or None to skip the consistency term (pretraining).
        config: supplies alpha1, entropy_threshold_z (Gamma_z) and alpha2.
        prior_mask: [...] bool, where prior_logits is a real prediction; None = everywhere.

    Returns:
        The float32 scalar total and a metrics dict of float32 scalars: obs/loss (total),
        obs/recon, obs/entropy (H summed over variables), obs/norm_entropy, obs/entropy_loss
        (unweighted hinge), obs/consistency (if prior_logits is given) and obs/recon_mae.
    """
    target = tf.cast(frames, tf.float32) / 255.0
    error = tf.cast(reconstruction, tf.float32) - target
    recon = 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(error), axis=[-3, -2, -1]))

    posterior = distributions.latent(logits)
    entropy = tf.reduce_mean(posterior.entropy())
    num_vars, num_classes = logits.shape[-2], logits.shape[-1]
    norm_entropy = entropy / (num_vars * math.log(num_classes))
    entropy_loss = entropy_lib.thresholded_entropy_loss(
        entropy, num_classes, config.entropy_threshold_z, num_vars
    )
    total = recon + config.alpha1 * entropy_loss

    metrics = {
        "obs/recon": recon,
        "obs/entropy": entropy,
        "obs/norm_entropy": norm_entropy,
        "obs/entropy_loss": entropy_loss,
        "obs/recon_mae": tf.reduce_mean(tf.abs(tf.stop_gradient(error))),
    }
    if prior_logits is not None:
        prior = distributions.latent(tf.stop_gradient(prior_logits))
        cross_entropy = prior.cross_entropy(posterior)  # [...]
        if prior_mask is None:
            consistency = tf.reduce_mean(cross_entropy)
        else:
            mask = tf.cast(prior_mask, tf.float32)
            consistency = tf.reduce_sum(mask * cross_entropy) / tf.maximum(tf.reduce_sum(mask), 1.0)
        total += config.alpha2 * consistency
        metrics["obs/consistency"] = consistency
    metrics["obs/loss"] = total
    return total, {name: tf.stop_gradient(value) for name, value in metrics.items()}

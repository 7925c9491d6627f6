"""The observation model of TWM: a categorical VAE over stacked 64x64 grayscale frames."""

from collections.abc import Callable

import keras
import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.models import initializers
from twm_tf.ops import activations
from twm_tf.ops import conv_forms
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

    Args:
        frame_stack: S, frames per observation.
        frame_size: the frames' height and width (64).
        channels: the 4 convolutions' output channels (config.encoder_channels).
        hidden: widths of the dense layers after the convolutions (config.encoder_hidden).
        latent_vars: V, categorical variables of z.
        latent_classes: C, classes per variable.
        name: the Keras name.
    """

    def __init__(
        self,
        *,
        frame_stack: int,
        frame_size: int,
        channels: tuple[int, ...],
        hidden: tuple[int, ...],
        latent_vars: int,
        latent_classes: int,
        name: str = "encoder",
    ):
        super().__init__(name=name)
        self._latent_shape = (latent_vars, latent_classes)
        last = len(channels) - 1
        self.convs = [
            # The last conv (6x6 -> 2x2) is faster as one patch matmul (see conv_forms).
            (conv_forms.PatchConv2D if i == last else keras.layers.Conv2D)(
                out_channels,
                _ENCODER_KERNEL,
                strides=2,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name=f"conv_{i}",
            )
            for i, out_channels in enumerate(channels)
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
            for i, width in enumerate(hidden)
        ]
        self.logits = keras.layers.Dense(
            latent_vars * latent_classes,
            kernel_initializer=initializers.kaiming_uniform(initializers.LINEAR_GAIN),
            bias_initializer=initializers.zeros(),
            dtype="float32",
            name="logits",
        )
        self.build((None, frame_stack, frame_size, frame_size))

    @classmethod
    def from_twm_config(cls, config: config_lib.Config, **kwargs) -> "Encoder":
        """The encoder of `config`: frame_*, encoder_channels, encoder_hidden and latent_*."""
        return cls(
            frame_stack=config.frame_stack,
            frame_size=config.frame_size,
            channels=config.encoder_channels,
            hidden=config.encoder_hidden,
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            **kwargs,
        )

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
        return tf.reshape(logits, [-1, *self._latent_shape])


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

    Args:
        latent_vars: V, categorical variables of z.
        latent_classes: C, classes per variable.
        hidden: width of the dense layer (config.decoder_hidden).
        channels: the first 3 transposed convolutions' output channels (config.decoder_channels);
            the last one has frame_stack.
        frame_stack: S, frames per observation.
        name: the Keras name.
    """

    def __init__(
        self,
        *,
        latent_vars: int,
        latent_classes: int,
        hidden: int,
        channels: tuple[int, ...],
        frame_stack: int,
        name: str = "decoder",
    ):
        super().__init__(name=name)
        self._latent_dim = latent_vars * latent_classes
        self.hidden = keras.layers.Dense(
            hidden,
            activation=activations.silu,
            kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
            bias_initializer=initializers.zeros(),
            name="hidden",
        )
        self.reshape = keras.layers.Reshape((1, 1, hidden), name="reshape")
        channels = (*channels, frame_stack)  # the output layer's: one per frame
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
        self.build((None, latent_vars, latent_classes))

    @classmethod
    def from_twm_config(cls, config: config_lib.Config, **kwargs) -> "Decoder":
        """The decoder of `config`: latent_*, decoder_hidden, decoder_channels and frame_stack."""
        return cls(
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            hidden=config.decoder_hidden,
            channels=config.decoder_channels,
            frame_stack=config.frame_stack,
            **kwargs,
        )

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
        x = tf.reshape(z, [-1, self._latent_dim])
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

    `encode` and `decode` accept any number of leading dims ([B], [B, T], ...) before the trailing
    `frame_shape` (S, 64, 64) and `latent_shape` (V, C). Sampling and the loss are module-level
    functions (`distributions.sample_latent`, `distributions.latent_mode`,
    `world_model_losses.observation_loss`).

    Args:
        frame_stack: S, frames per observation.
        frame_size: the frames' height and width (64, which the conv stacks are built for).
        latent_vars: V, categorical variables of z.
        latent_classes: C, classes per variable.
        encoder_channels: the 4 encoder convolutions' output channels.
        encoder_hidden: widths of the encoder's dense layers after the convolutions.
        decoder_hidden: width of the decoder's dense layer before the transposed convolutions.
        decoder_channels: the first 3 transposed convolutions' output channels (the 4th: S).
        name: the Keras name.
    """

    def __init__(
        self,
        *,
        frame_stack: int,
        frame_size: int,
        latent_vars: int,
        latent_classes: int,
        encoder_channels: tuple[int, ...],
        encoder_hidden: tuple[int, ...],
        decoder_hidden: int,
        decoder_channels: tuple[int, ...],
        name: str = "observation_model",
    ):
        super().__init__(name=name)
        self.frame_shape = (frame_stack, frame_size, frame_size)
        self.latent_shape = (latent_vars, latent_classes)
        self.encoder = Encoder(
            frame_stack=frame_stack,
            frame_size=frame_size,
            channels=encoder_channels,
            hidden=encoder_hidden,
            latent_vars=latent_vars,
            latent_classes=latent_classes,
        )
        self.decoder = Decoder(
            latent_vars=latent_vars,
            latent_classes=latent_classes,
            hidden=decoder_hidden,
            channels=decoder_channels,
            frame_stack=frame_stack,
        )
        # Both parts build themselves; there is no call() for Keras to trace.
        self.built = True

    @classmethod
    def from_twm_config(cls, config: config_lib.Config, **kwargs) -> "ObservationModel":
        """The VAE of `config`: frame_*, latent_*, encoder_* and decoder_*."""
        return cls(
            frame_stack=config.frame_stack,
            frame_size=config.frame_size,
            latent_vars=config.latent_vars,
            latent_classes=config.latent_classes,
            encoder_channels=config.encoder_channels,
            encoder_hidden=config.encoder_hidden,
            decoder_hidden=config.decoder_hidden,
            decoder_channels=config.decoder_channels,
            **kwargs,
        )

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
        frame_shape = self.frame_shape
        frames = tf.convert_to_tensor(frames)
        if frames.dtype != tf.uint8:
            raise ValueError(f"frames must be uint8 in [0, 255], got {frames.dtype}")
        if frames.shape.rank is None or not frames.shape[-3:].is_compatible_with(frame_shape):
            raise ValueError(f"frames must end in {list(frame_shape)}, got {frames.shape}")
        leading, static = _split_leading(frames, 3)
        logits = self.encoder(tf.reshape(frames, (-1, *frame_shape)), training=training)
        return _restore_leading(logits, leading, static, self.latent_shape)

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
        latent_shape = self.latent_shape
        z = tf.convert_to_tensor(z)
        if z.shape.rank is None or not z.shape[-2:].is_compatible_with(latent_shape):
            raise ValueError(f"z must end in {list(latent_shape)}, got {z.shape}")
        leading, static = _split_leading(z, 2)
        frames = self.decoder(tf.reshape(z, (-1, *latent_shape)), training=training)
        return _restore_leading(frames, leading, static, self.frame_shape)

"""Equivalent, faster forms of three VAE convolutions whose shapes oneDNN runs slowly.

At the paper's shapes (N = 1,600 frame stacks) each form below runs forward and backward faster
than the Keras layer it replaces (timings per layer in docs/benchmarks.md):

  encoder conv_3   [N, 6, 6, 192] -> [N, 2, 2, 384], kernel 4, stride 2    PatchConv2D
  decoder deconv_0 [N, 1, 1, 768] -> [N, 5, 5, 192], kernel 5, stride 2    PointTransposedConv2D
  decoder output   [N, 30, 30, 48] -> [N, 64, 64, 4], kernel 6, stride 2   SubPixelTransposedConv2D

The layers keep the Keras parents' variables ([kh, kw, in, out] and [kh, kw, out, in] kernels,
same names), so checkpoints and initializers are unchanged; they differ only in call().
"""

import keras
import tensorflow as tf


def _bias_and_activation(layer: keras.layers.Layer, outputs: tf.Tensor) -> tf.Tensor:
    """What every Keras convolution does after its kernel: bias add, then activation."""
    return layer.activation(outputs + layer.bias if layer.use_bias else outputs)


class PatchConv2D(keras.layers.Conv2D):
    """A valid-padding Conv2D computed as one matmul over its input patches.

    Worth it when the output has few pixels and the kernel many taps: the patch matrix
    [N * out_h * out_w, kh * kw * in] is then small and the matmul large.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """[N, H, W, in] -> [N, out_h, out_w, out] (same as keras.layers.Conv2D)."""
        if (
            self.padding != "valid"
            or self.data_format != "channels_last"
            or self.dilation_rate != (1, 1)
            or self.groups != 1
        ):
            raise ValueError(
                f"{self.name}: PatchConv2D needs valid padding, channels_last, no dilation and "
                f"one group"
            )
        kh, kw, channels_in, channels_out = self.kernel.shape
        _, height, width, _ = inputs.shape
        rows = range(0, height - kh + 1, self.strides[0])
        cols = range(0, width - kw + 1, self.strides[1])
        # Pixel indices of every patch in [out_h, out_w, kh, kw] order: one gather, whose
        # gradient is one segment sum. Stacked slices instead cost a padded copy of the input
        # per patch in the backward pass, and tf.image.extract_patches is a one-hot convolution
        # under XLA, slow at batch 1.
        taps = [(i, j) for i in range(kh) for j in range(kw)]
        pixels = [(r + i) * width + c + j for r in rows for c in cols for i, j in taps]
        patches = tf.gather(tf.reshape(inputs, [-1, height * width, channels_in]), pixels, axis=1)
        patches = tf.reshape(patches, [-1, len(rows), len(cols), kh * kw * channels_in])
        outputs = tf.tensordot(patches, tf.reshape(self.kernel, [-1, channels_out]), axes=1)
        return _bias_and_activation(self, outputs)


class PointTransposedConv2D(keras.layers.Conv2DTranspose):
    """A Conv2DTranspose of a 1x1 map, computed as the dense layer it equals.

    From one input pixel, output pixel (i, j) is x @ kernel[i, j]^T: the layer is one
    [N, in] x [in, kh * kw * out] matmul.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """[N, 1, 1, in] -> [N, kh, kw, out] (same as keras.layers.Conv2DTranspose)."""
        kh, kw, channels_out, channels_in = self.kernel.shape
        # Valid padding, no dilation or output padding, and a kernel no smaller than the stride.
        output_size = tuple(self.compute_output_shape(inputs.shape)[1:3])
        if tuple(inputs.shape[1:3]) != (1, 1) or output_size != (kh, kw):
            raise ValueError(
                f"{self.name}: PointTransposedConv2D needs a [N, 1, 1, C] input and an output of "
                f"the kernel's size, got shape {inputs.shape} and output size {output_size}"
            )
        x = tf.reshape(inputs, [-1, channels_in])
        kernel = tf.reshape(self.kernel, [kh * kw * channels_out, channels_in])
        outputs = tf.reshape(tf.matmul(x, kernel, transpose_b=True), [-1, kh, kw, channels_out])
        return _bias_and_activation(self, outputs)


class SubPixelTransposedConv2D(keras.layers.Conv2DTranspose):
    """A valid-padding Conv2DTranspose computed as a stride-1 convolution and depth_to_space.

    Output pixel (s a + r, s b + t) of a stride-s transposed convolution sums kernel taps
    (s m + r, s m' + t) over input pixels (a - m, b - m'). So a q x q convolution (q = ceil(k / s))
    of the input padded by q - 1, whose s * s * out channels are those taps of the flipped
    kernel, followed by depth_to_space(s), gives every output pixel; a crop to Keras's output
    size follows. It computes s * s times more output channels per pixel, which vectorizes where
    a few output channels (the decoder's 4 frames) do not. The gradients are the transposed
    convolution's own (a strided convolution of dy, and Conv2DBackpropFilter): faster than the
    gradients of this form.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """[N, H, W, in] -> [N, (H - 1) s + max(kh, s), (W - 1) s + max(kw, s), out]."""
        if (
            self.padding != "valid"
            or self.strides[0] != self.strides[1]
            or self.dilation_rate != (1, 1)
            or self.output_padding is not None
        ):
            raise ValueError(
                f"{self.name}: SubPixelTransposedConv2D needs valid padding, equal strides, no "
                f"dilation or output padding; got padding {self.padding!r}, strides "
                f"{self.strides}"
            )
        outputs = _sub_pixel_transposed_conv(
            inputs, tf.convert_to_tensor(self.kernel), self.strides[0]
        )
        return _bias_and_activation(self, outputs)


def _sub_pixel_transposed_conv(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """conv2d_transpose(x, kernel, stride, valid): x [N, H, W, in], kernel [kh, kw, out, in]."""
    kh, kw, channels_out, channels_in = kernel.shape
    q_h, q_w = -(-kh // stride), -(-kw // stride)
    # Keras's output size; max(k, s) covers a kernel smaller than the stride.
    out_h, out_w = ((x.shape[i] - 1) * stride + max(k, stride) for i, k in ((1, kh), (2, kw)))
    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def transposed_conv(x, kernel):
        padded = tf.pad(kernel, [[0, q_h * stride - kh], [0, q_w * stride - kw], [0, 0], [0, 0]])
        # [m, r, m', t, out, in] for tap (s m + r, s m' + t), m and m' flipped: input pixel
        # a - m sits at offset q - 1 - m of the window that starts at a - (q - 1).
        taps = tf.reshape(padded, [q_h, stride, q_w, stride, channels_out, channels_in])
        taps = tf.reshape(
            tf.transpose(taps[::-1, :, ::-1], [0, 2, 5, 1, 3, 4]),
            [q_h, q_w, channels_in, stride * stride * channels_out],
        )
        x_padded = tf.pad(x, [[0, 0], [q_h - 1, q_h - 1], [q_w - 1, q_w - 1], [0, 0]])
        y = tf.nn.depth_to_space(tf.nn.conv2d(x_padded, taps, 1, "VALID"), stride)

        def gradient(dy):
            dx = tf.nn.conv2d(dy, kernel, strides, "VALID")
            dkernel = tf.raw_ops.Conv2DBackpropFilter(
                input=dy,
                filter_sizes=tf.shape(kernel),
                out_backprop=x,
                strides=strides,
                padding="VALID",
            )
            return dx, dkernel

        return y[:, :out_h, :out_w], gradient

    return transposed_conv(x, kernel)

"""Convolutions with few output or input pixels, computed as the matmuls they are.

The VAE's smallest maps run far below matmul speed in oneDNN's convolution kernels. Measured at
the paper's shapes (N = 1,600 frame stacks, float32, forward and backward, Intel Xeon with
AVX-512, 2026-11-29):

  encoder conv_3   [N, 6, 6, 192] -> [N, 2, 2, 384], kernel 4, stride 2    515 -> 215 ms
  decoder deconv_0 [N, 1, 1, 768] -> [N, 5, 5, 192], kernel 5, stride 2   1,260 -> 135 ms

Both layers keep the Keras parents' variables ([kh, kw, in, out] and [kh, kw, out, in] kernels,
same names), so checkpoints and initializers are unchanged; they differ only in call().
"""

import keras
import tensorflow as tf


class PatchConv2D(keras.layers.Conv2D):
    """A valid-padding Conv2D computed as one matmul over its input patches.

    Worth it when the output has few pixels and the kernel many taps: the patch matrix
    [N * out_h * out_w, kh * kw * in] is then small and the matmul large.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """[N, H, W, in] -> [N, out_h, out_w, out] (same as keras.layers.Conv2D)."""
        if self.padding != "valid" or self.data_format != "channels_last":
            raise ValueError(f"{self.name}: PatchConv2D needs valid padding and channels_last")
        kh, kw, channels_in, channels_out = self.kernel.shape
        _, height, width, _ = inputs.shape
        rows = range(0, height - kh + 1, self.strides[0])
        cols = range(0, width - kw + 1, self.strides[1])
        # [N, out_h, out_w, kh, kw, in]: slices, not tf.image.extract_patches, whose XLA form is
        # a convolution with a one-hot kernel (slower at batch 1, where the policy runs).
        patches = tf.stack(
            [tf.stack([inputs[:, r : r + kh, c : c + kw] for c in cols], axis=1) for r in rows],
            axis=1,
        )
        patches = tf.reshape(patches, [-1, len(rows), len(cols), kh * kw * channels_in])
        outputs = tf.tensordot(patches, tf.reshape(self.kernel, [-1, channels_out]), axes=1)
        return self.activation(outputs + self.bias if self.use_bias else outputs)


class PointTransposedConv2D(keras.layers.Conv2DTranspose):
    """A Conv2DTranspose of a 1x1 map, computed as the dense layer it equals.

    From one input pixel, output pixel (i, j) is x @ kernel[i, j]^T: the layer is one
    [N, in] x [in, kh * kw * out] matmul. Valid padding only (the output is kh x kw).
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """[N, 1, 1, in] -> [N, kh, kw, out] (same as keras.layers.Conv2DTranspose)."""
        if tuple(inputs.shape[1:3]) != (1, 1) or self.padding != "valid":
            raise ValueError(
                f"{self.name}: PointTransposedConv2D needs a [N, 1, 1, C] input and valid "
                f"padding, got shape {inputs.shape} and padding {self.padding!r}"
            )
        kh, kw, channels_out, channels_in = self.kernel.shape
        x = tf.reshape(inputs, [-1, channels_in])
        kernel = tf.reshape(self.kernel, [kh * kw * channels_out, channels_in])
        outputs = tf.reshape(tf.matmul(x, kernel, transpose_b=True), [-1, kh, kw, channels_out])
        return self.activation(outputs + self.bias if self.use_bias else outputs)

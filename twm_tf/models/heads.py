"""The dynamics model's prediction heads: MLPs from the Transformer-XL output h to a prediction."""

import keras
import tensorflow as tf

from twm_tf.models import initializers
from twm_tf.ops import activations
from twm_tf.ops import dropout as dropout_lib


class PredictionHead(keras.layers.Layer):
    """MLP on h: SiLU first (h is a LayerNorm output), SiLU hidden layers with dropout, linear.

    Kaiming-uniform weights (gain sqrt 2 on the hidden layers, 1 on the final one) and zero biases
    as in the original, except the final bias, which starts at `bias`.

    Args:
        hidden: widths of the SiLU hidden layers (config.latent_head or config.scalar_head).
        units: outputs of the final linear layer.
        dropout: rate after each hidden layer.
        bias: the final layer's initial bias.
    """

    def __init__(
        self, hidden: tuple[int, ...], units: int, dropout: float, bias: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.hidden = [
            keras.layers.Dense(
                n,
                activation=activations.silu,
                kernel_initializer=initializers.kaiming_uniform(initializers.SILU_GAIN),
                bias_initializer=initializers.zeros(),
                name=f"hidden_{i}",
            )
            for i, n in enumerate(hidden)
        ]
        # float32 outputs (logits, means) under mixed-precision policies too.
        self.final = keras.layers.Dense(
            units,
            kernel_initializer=initializers.kaiming_uniform(initializers.LINEAR_GAIN),
            bias_initializer=keras.initializers.Constant(bias),
            dtype="float32",
            name="final",
        )
        self.dropout = dropout_lib.Dropout(dropout, name="dropout")

    def build(self, input_shape):
        for layer in self.hidden:
            layer.build(input_shape)
            input_shape = (*input_shape[:-1], layer.units)
        self.final.build(input_shape)

    def call(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[..., D] -> [..., units]."""
        x = activations.silu(h)
        for layer in self.hidden:
            x = self.dropout(layer(x), training=training)
        return self.final(x)

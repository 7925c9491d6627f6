"""Keras initializers that reproduce the PyTorch initialization of the released TWM code.

Layer by layer (docs/spec.md, "Initialization"), with fan_in the number of inputs of a unit:

  encoder convs and MLPs, decoder dense layer,   kaiming_uniform(SILU_GAIN), zero bias;
  z/r embeddings, prediction-head MLPs           final linear layers kaiming_uniform(LINEAR_GAIN)
  decoder transposed convs                       torch_default_kernel(), torch_default_bias(fan_in)
  action embedding                               standard_normal()
  Transformer-XL projections, feed-forward       torch_default_kernel() (+ torch_default_bias)
  Transformer-XL biases u and v                  xavier_uniform()
  actor and critic MLPs                          orthogonal(SILU_GAIN), last layer orthogonal(1)

Each function returns a new initializer: Keras draws an unseeded initializer's seed once, so one
instance shared by two layers would give them identical weights.
"""

import math

import keras

# The released code maps SiLU to ReLU's gain (torch.nn.init.calculate_gain("relu") = sqrt 2).
SILU_GAIN = math.sqrt(2.0)
LINEAR_GAIN = 1.0


def kaiming_uniform(gain: float) -> keras.initializers.Initializer:
    """torch.nn.init.kaiming_uniform_ with the given gain: U(+-gain * sqrt(3 / fan_in)).

    Keras's fan_in of a Dense kernel [in, out] is `in`, of a Conv2D kernel [kh, kw, in, out]
    kh * kw * in, as PyTorch's for the transposed [out, in(, kh, kw)] weights.

    Args:
        gain: the nonlinearity's gain (SILU_GAIN before a SiLU, LINEAR_GAIN on a final layer).
    """
    return keras.initializers.VarianceScaling(scale=gain**2, mode="fan_in", distribution="uniform")


def torch_default_kernel() -> keras.initializers.Initializer:
    """The default weight of nn.Linear, nn.Conv2d and nn.ConvTranspose2d: U(+-1 / sqrt(fan_in)).

    PyTorch draws kaiming_uniform_(a=sqrt 5), i.e. gain sqrt(1/3). For nn.ConvTranspose2d its
    weight is [in, out, kh, kw] and fan_in = out * kh * kw (dim 1 times the receptive field); the
    Keras Conv2DTranspose kernel is [kh, kw, out, in] and Keras's fan_in (dim -2 times the
    receptive field) is the same out * kh * kw.
    """
    return kaiming_uniform(math.sqrt(1.0 / 3.0))


def torch_default_bias(fan_in: int) -> keras.initializers.Initializer:
    """The default bias of nn.Linear, nn.Conv2d and nn.ConvTranspose2d: U(+-1 / sqrt(fan_in)).

    Args:
        fan_in: the fan_in of the layer's weight (see `torch_default_kernel`); a bias has no fan
            of its own, so the layer must supply it.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def xavier_uniform() -> keras.initializers.Initializer:
    """torch.nn.init.xavier_uniform_: U(+-sqrt(6 / (fan_in + fan_out))).

    For a 2-D tensor [a, b] PyTorch takes fan_in = b, fan_out = a and Keras the reverse; the bound
    is symmetric in the two, so Glorot-uniform is the same distribution.
    """
    return keras.initializers.GlorotUniform()


def standard_normal() -> keras.initializers.Initializer:
    """nn.Embedding's default weight, N(0, 1)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)


def orthogonal(gain: float) -> keras.initializers.Initializer:
    """torch.nn.init.orthogonal_ with the given gain (a semi-orthogonal matrix times gain).

    Keras's Dense kernel [in, out] is PyTorch's weight [out, in] transposed; both initializers
    make the vectors along the smaller dimension orthonormal, so kernel^T kernel = gain^2 I when
    in >= out and kernel kernel^T = gain^2 I otherwise.
    """
    return keras.initializers.Orthogonal(gain=gain)


def zeros() -> keras.initializers.Initializer:
    """Zero biases (the released code's init_ helper)."""
    return keras.initializers.Zeros()

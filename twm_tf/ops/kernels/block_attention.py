"""The fused attention core of an imagination step (block_attention.cc), built and loaded here.

Build it once per TensorFlow install (`./setup.sh` does):

    .venv/bin/python -m twm_tf.ops.kernels.block_attention

Without the built library, or where it does not apply (a GPU, XLA, bfloat16), the Transformer-XL
uses its TensorFlow ops, which compute the same numbers up to float round-off.
"""

import functools
import os
import subprocess
import sys

import tensorflow as tf
from absl import logging
from tensorflow.python.ops import control_flow_util

_SOURCE = os.path.join(os.path.dirname(__file__), "block_attention.cc")
LIBRARY = os.path.join(os.path.dirname(__file__), "_block_attention.so")


def build(output: str = LIBRARY, march: str | None = None) -> str:
    """Compiles the kernel against the installed TensorFlow with g++; returns the library path.

    Without `march` the library carries AVX-512, AVX2 + FMA and baseline x86-64 clones of its
    loop, and the CPU picks one when it loads, so one build serves every x86-64 CPU. With `march`
    (a g++ -march value such as "haswell" or "x86-64") it holds that one target only: that is how
    the tests run the clones this CPU would not pick.
    """
    target = [] if march is None else [f"-march={march}", "-DTWM_SINGLE_TARGET"]
    command = [
        "g++",
        "-O3",
        "-fopenmp-simd",
        "-shared",
        "-fPIC",
        "-Wno-deprecated-declarations",  # both warn inside TensorFlow's and Eigen's headers
        "-Wno-interference-size",
        *target,
        *tf.sysconfig.get_compile_flags(),
        _SOURCE,
        "-o",
        output + ".tmp",
        *tf.sysconfig.get_link_flags(),
    ]
    subprocess.run(command, check=True)
    os.replace(output + ".tmp", output)  # atomic: a concurrent loader never sees half a file
    return output


def load(library: str = LIBRARY):
    """The op module of a built library, or None (with a warning) if it does not load.

    A library built against another TensorFlow fails to load (undefined symbols); the
    Transformer-XL then runs its TensorFlow ops, slower, until the kernel is rebuilt.
    """
    try:
        return tf.load_op_library(library)
    except tf.errors.OpError as error:
        logging.warning(
            "Not using the fused attention kernel %s, it does not load (%s). Rebuild it with "
            "./setup.sh or python -m twm_tf.ops.kernels.block_attention.",
            library,
            error.message.strip(),
        )
        return None


@functools.cache
def _ops():
    """The loaded op module, or None where the library is missing or no CPU-only run uses it."""
    if not os.path.exists(LIBRARY) or tf.config.list_logical_devices("GPU"):
        return None
    return load(LIBRARY)


def available(dtype: tf.DType) -> bool:
    """Whether `attend` runs here: float32, the library built, no GPU, not traced for XLA."""
    # tf.function(jit_compile=True) traces inside an XLA context (Keras asks the same way).
    xla = control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    return dtype == tf.float32 and not xla and _ops() is not None


def attend(query, content_bias, position_bias, relative, mask, keys, values, scale):
    """Relative attention of the last Q of T tokens, reading the key/value blocks in place.

    Args:
      query: [H, B, Q, D] the queries of the last Q tokens, without biases.
      content_bias: u, [H, D].
      position_bias: v, [H, D].
      relative: [T, H, D] the projected position encodings; row c encodes distance T - 1 - c.
      mask: [B, Q, T] bool, True where query i may attend key j; key T - Q + i (itself) must be.
      keys: blocks [H, B, K_n, D], oldest first, sum K_n = T.
      values: blocks as keys.
      scale: the scores' factor.

    Returns:
      [B, Q, H, D] the attention-weighted values, softmax((q + u) . k_j + (q + v) . r(i - j)).
    """
    return _ops().twm_block_attention(
        query, content_bias, position_bias, relative, mask, list(keys), list(values), scale=scale
    )


if __name__ == "__main__":
    print(build(*sys.argv[1:]))

"""Forward + backward time of each VAE convolution at the paper's shapes, Keras's layer against
the forms in twm_tf/ops/conv_forms.py (N = 1,600 frame stacks, float32, median of 5).

    .venv/bin/python -m tools.bench.vae_layer_microbench
    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python -m tools.bench.vae_layer_microbench

Each step takes the gradients of sum(y^2) w.r.t. the input (not for the first layer, whose input
is the frames), the kernel and the bias. Prints one line per layer and form, then a JSON dict;
results in docs/benchmarks.md ("Why the model code has its forms").
"""

import json

import keras
import tensorflow as tf

from launch import benchmark
from twm_tf.ops import conv_forms

N = 1600
CONV, DECONV = keras.layers.Conv2D, keras.layers.Conv2DTranspose
# name, input shape, (filters, kernel, activation), forms to time
LAYERS = [
    ("encoder conv_0", [N, 64, 64, 4], (48, 4, "silu"), [CONV]),
    ("encoder conv_1", [N, 31, 31, 48], (96, 4, "silu"), [CONV]),
    ("encoder conv_2", [N, 14, 14, 96], (192, 4, "silu"), [CONV]),
    ("encoder conv_3", [N, 6, 6, 192], (384, 4, "silu"), [CONV, conv_forms.PatchConv2D]),
    (
        "decoder deconv_1",
        [N, 5, 5, 192],
        (96, 5, "silu"),
        [DECONV, conv_forms.SubPixelTransposedConv2D],
    ),
    (
        "decoder deconv_2",
        [N, 13, 13, 96],
        (48, 6, "silu"),
        [DECONV, conv_forms.SubPixelTransposedConv2D],
    ),
    (
        "decoder output",
        [N, 30, 30, 48],
        (4, 6, None),
        [DECONV, conv_forms.SubPixelTransposedConv2D],
    ),
]


def time_layer(layer, shape, input_gradient: bool) -> float:
    x = tf.random.normal(shape)
    layer.build(shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        sources = [layer.kernel, layer.bias] + ([x] if input_gradient else [])
        return [tf.reduce_sum(g) for g in tape.gradient(loss, sources)]

    return benchmark._median_seconds(lambda: [g.numpy() for g in step(x)], repeats=5)


def main():
    results = {}
    for name, shape, (filters, kernel, activation), forms in LAYERS:
        for form in forms:
            layer = form(filters, kernel, strides=2, activation=activation)
            ms = round(1e3 * time_layer(layer, shape, name != "encoder conv_0"), 1)
            results[f"{name} / {form.__name__}"] = ms
            print(f"{name:18s} {form.__name__:26s} {ms:8.1f} ms", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

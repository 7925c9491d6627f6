"""Where each twm-tf variable lives in the original TWM code, and how its layout differs.

NumPy only: the torch side (another venv, no TensorFlow) imports it too. Keys are twm-tf's
`<model>/<path>` (models "observation", "dynamics", "actor", "critic"; paths as
`twm_tf.run.checkpoint.variables_by_path` keys them); values name the parameter of the original's
module (`obs_model`, `dyn_model`, `actor_model`, `critic_model`) and the layout change:

    dense          Keras kernel [in, out]                 <-> nn.Linear weight [out, in]
    conv           Conv2D kernel [kh, kw, in, out] (HWIO)  <-> nn.Conv2d weight [out, in, kh, kw]
    deconv         Conv2DTranspose kernel [kh, kw, out, in] <-> nn.ConvTranspose2d [in, out, kh, kw]
    flatten_dense  the first encoder Dense: twm-tf flattens [2, 2, C] (NHWC), the original
                   [C, 2, 2] (NCHW), so the kernel's rows are permuted as well as transposed
    same           biases, LayerNorm gamma/beta, the action embedding [A, D], u and v [heads, hd]

The qkv projection needs no permutation: both split its 3 D outputs into q, k, v (in that order)
and each into [heads, head_dim] the same way.
"""

from typing import NamedTuple

import numpy as np

MODELS = ("observation", "dynamics", "actor", "critic")
# The original module that holds each model, relative to WorldModel / ActorCritic.
TORCH_MODULES = {
    "observation": "obs_model",
    "dynamics": "dyn_model",
    "actor": "actor_model",
    "critic": "critic_model",
}
_FLAT_PIXELS = 4  # The encoder's last feature map is 2 x 2 for 64 x 64 frames.


class Rule(NamedTuple):
    torch_name: str  # parameter name inside TORCH_MODULES[model]
    kind: str  # dense, conv, deconv, flatten_dense or same


def _linear(prefix: str, index: int, kind: str = "dense") -> dict[str, Rule]:
    return {
        "kernel": Rule(f"{prefix}linear{index}.weight", kind),
        "bias": Rule(f"{prefix}linear{index}.bias", "same"),
    }


def _add(rules: dict, model: str, layer: str, parts: dict[str, Rule]) -> None:
    for variable, rule in parts.items():
        rules[f"{model}/{layer}/{variable}"] = rule


def _mlp(rules, model, layers: list[str], prefix: str, first_kind: str = "dense") -> None:
    for i, layer in enumerate(layers):
        _add(rules, model, layer, _linear(prefix, i + 1, first_kind if i == 0 else "dense"))


def rules(config: dict) -> dict[str, Rule]:
    """Every trainable twm-tf variable of a config (a twm-tf Config as a dict) -> its Rule."""
    out: dict[str, Rule] = {}
    # Observation model: encoder = Sequential(CNN, Flatten, MLP), decoder = (MLP, Unflatten, TCNN).
    for i in range(len(config["encoder_channels"])):
        _add(out, "observation", f"encoder/conv_{i}", {
            "kernel": Rule(f"encoder.0.conv{i + 1}.weight", "conv"),
            "bias": Rule(f"encoder.0.conv{i + 1}.bias", "same"),
        })  # fmt: skip
    hidden = [f"encoder/hidden_{i}" for i in range(len(config["encoder_hidden"]))]
    _mlp(out, "observation", [*hidden, "encoder/logits"], "encoder.2.", "flatten_dense")
    _add(out, "observation", "decoder/hidden", _linear("decoder.0.", 1))
    deconvs = [f"decoder/deconv_{i}" for i in range(len(config["decoder_channels"]))]
    for i, layer in enumerate([*deconvs, "decoder/output"]):
        _add(out, "observation", layer, {
            "kernel": Rule(f"decoder.2.conv_transpose{i + 1}.weight", "deconv"),
            "bias": Rule(f"decoder.2.conv_transpose{i + 1}.bias", "same"),
        })  # fmt: skip

    # Dynamics model: PredictionNet's embeddings, Transformer-XL and three MLP heads.
    net = "prediction_net."
    _add(out, "dynamics", "latent_embed", _linear(f"{net}embeds.z.", 1))
    out["dynamics/action_embed/embeddings"] = Rule(f"{net}embeds.a.weight", "same")
    if config["reward_input"]:
        _add(out, "dynamics", "reward_embed", _linear(f"{net}embeds.r.", 1))
    out["dynamics/transformer/content_bias"] = Rule(f"{net}transformer.u_bias", "same")
    out["dynamics/transformer/position_bias"] = Rule(f"{net}transformer.v_bias", "same")
    for i in range(config["dyn_layers"]):
        block, layer = f"transformer/block_{i}", f"{net}transformer.layers.{i}."
        for name, torch_name in (
            ("qkv", "qkv_proj"),
            ("position", "pos_proj"),
            ("out", "out_proj"),
        ):
            out[f"dynamics/{block}/attention/{name}/kernel"] = Rule(
                f"{layer}self_attn.{torch_name}.weight", "dense"
            )
        for name, index in (("ffn_in", 1), ("ffn_out", 2)):
            _add(out, "dynamics", f"{block}/{name}", _linear(layer, index))
        for name, norm in (("attention_norm", "norm1"), ("ffn_norm", "norm2")):
            _add(out, "dynamics", f"{block}/{name}", {
                "gamma": Rule(f"{layer}{norm}.weight", "same"),
                "beta": Rule(f"{layer}{norm}.bias", "same"),
            })  # fmt: skip
    for head, key, widths in (
        ("latent_head", "z", config["latent_head"]),
        ("reward_head", "r", config["scalar_head"]),
        ("discount_head", "g", config["scalar_head"]),
    ):
        layers = [f"{head}/hidden_{i}" for i in range(len(widths))] + [f"{head}/final"]
        _mlp(out, "dynamics", layers, f"{net}out_heads.{key}.")

    # Actor and critic: MLPs on the flattened latent.
    for model in ("actor", "critic"):
        layers = [f"mlp/hidden_{i}" for i in range(len(config["ac_hidden"]))] + ["mlp/out"]
        _mlp(out, model, layers, "")
    return out


def to_torch(kind: str, x: np.ndarray) -> np.ndarray:
    """A twm-tf variable's value in the original's layout."""
    if kind == "same":
        return x
    if kind == "dense":
        return x.T
    if kind in ("conv", "deconv"):
        return x.transpose(3, 2, 0, 1)
    if kind == "flatten_dense":
        # Keras row p * C + c (pixel p, channel c) -> torch column c * 4 + p.
        channels = x.shape[0] // _FLAT_PIXELS
        return x.reshape(_FLAT_PIXELS, channels, -1).transpose(2, 1, 0).reshape(x.shape[1], -1)
    raise ValueError(f"unknown layout kind {kind!r}")


def from_torch(kind: str, x: np.ndarray) -> np.ndarray:
    """The inverse of `to_torch`: an original parameter (or gradient, slot) in twm-tf's layout."""
    if kind == "same":
        return x
    if kind == "dense":
        return x.T
    if kind in ("conv", "deconv"):
        return x.transpose(2, 3, 1, 0)
    if kind == "flatten_dense":
        channels = x.shape[1] // _FLAT_PIXELS
        return x.reshape(-1, channels, _FLAT_PIXELS).transpose(2, 1, 0).reshape(-1, x.shape[0])
    raise ValueError(f"unknown layout kind {kind!r}")


def write_weights(init: str, path: str, trained: dict[str, np.ndarray]) -> None:
    """Writes `init`'s weights file (weights/<model>/<path>) to `path` with `trained` in place.

    Both codes' `--save_weights` use it: the arrays they do not train (dropout RNG states) stay as
    `init` has them, so either code can start from the file.
    """
    with np.load(init) as data:
        weights = {key: data[key] for key in data.files}
    weights.update(trained)
    np.savez(path, **weights)

"""Writes a parity case: twm-tf's initial weights, a batch, and the draws of one update.

    .venv/bin/python -m tools.parity.make_case --size=small --out=/tmp/parity/small

The draws are recorded by running twm-tf's update once (tools/parity/twm_update.py), since the
number of restart draws depends on the rollout; they include the dynamics model's dropout masks,
which the torch side applies at the same sites (--nodropout sets dyn_dropout = 0 instead). The
discount head's final bias starts
at --discount_bias (sigmoid 0.6 by default, instead of logit(0.99)) so that rollouts restart
within the horizon and the restart path is compared too.
"""

import os

from absl import app
from absl import flags

from tools.parity import case as case_lib
from tools.parity import draws as draws_lib
from tools.parity import twm_update

_SIZE = flags.DEFINE_enum("size", "tiny", sorted(case_lib.SIZES), "Model size.")
_OUT = flags.DEFINE_string("out", None, "Case directory to write.", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights, the batch and the draws.")
_WM_BATCH = flags.DEFINE_integer("wm_batch", None, "N windows (default: the size's).")
_IMAG_STARTS = flags.DEFINE_integer("imag_starts", None, "M rollouts (default: the size's).")
_MEMORY = flags.DEFINE_integer("memory_steps", None, "Transformer memory (default: the size's).")
_DROPOUT = flags.DEFINE_bool(
    "dropout", True, "Keep the size's dyn_dropout (identical masks); --nodropout sets it to 0."
)
_DISCOUNT_BIAS = flags.DEFINE_float(
    "discount_bias", 0.405, "Initial discount-head logit bias (sigmoid(0.405) = 0.6)."
)


def main(argv):
    del argv
    overrides = {} if _DROPOUT.value else {"dyn_dropout": 0.0}
    for name, flag in (
        ("wm_batch", _WM_BATCH),
        ("imag_starts", _IMAG_STARTS),
        ("memory_steps", _MEMORY),
    ):
        if flag.value is not None:
            overrides[name] = flag.value
    config = case_lib.config_for(_SIZE.value, **overrides)
    weights = twm_update.initial_weights(config, case_lib.NUM_ACTIONS, _SEED.value)
    bias = weights["dynamics/discount_head/final/bias"]
    weights["dynamics/discount_head/final/bias"] = bias * 0 + _DISCOUNT_BIAS.value
    arrays, case = case_lib.make(config, weights, _SEED.value)
    case_lib.save(_OUT.value, config, arrays)
    draws = draws_lib.Draws(seed=_SEED.value)
    twm_update.run(case, draws)
    draws.save(os.path.join(_OUT.value, case_lib.DRAWS))
    print(f"wrote {_OUT.value}: {len(draws.noise_arrays)} noise draws, {len(draws.masks)} "
          f"dropout masks, {len(draws.restart_frames)} restarting steps")  # fmt: skip


if __name__ == "__main__":
    app.run(main)

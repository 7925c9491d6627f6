"""Writes freshly initialized twm-tf weights for the many-update comparison's two sides.

python -m tools.parity.make_init --size=small --num_actions=18 --out=/data/init-small.npz
"""

from absl import app
from absl import flags
import numpy as np

from tools.parity import case as case_lib
from tools.parity import twm_update

_SIZE = flags.DEFINE_enum("size", "small", sorted(case_lib.SIZES), "Model sizes.")
_NUM_ACTIONS = flags.DEFINE_integer("num_actions", 18, "The game's action count (Boxing: 18).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initializers.")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.", required=True)


def main(argv):
    del argv
    config = case_lib.config_for(_SIZE.value)
    weights = twm_update.initial_weights(config, _NUM_ACTIONS.value, _SEED.value)
    np.savez(_OUT.value, **{f"weights/{name}": value for name, value in weights.items()})


if __name__ == "__main__":
    app.run(main)

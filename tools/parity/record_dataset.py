"""Records the fixed dataset of the many-update comparison (dataset.py) with a random policy.

python -m tools.parity.record_dataset --game=Boxing --steps=25000 --out=/data/boxing-25k.npz
"""

from absl import app
from absl import flags

from tools.parity import dataset

_GAME = flags.DEFINE_string("game", "Boxing", "Atari game.")
_STEPS = flags.DEFINE_integer("steps", 25_000, "Steps to record.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the env and the random policy.")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.", required=True)


def main(argv):
    del argv
    dataset.record(_GAME.value, _STEPS.value, _SEED.value, _OUT.value)


if __name__ == "__main__":
    app.run(main)

"""Environments: the real Atari games (atari.py) and a run's world model as one (dream.py).

Importing this package registers the dream with Gymnasium:
`gymnasium.make("twm_tf/Dream-v0", run_dir=...)` builds a `dream.DreamEnv`.
"""

import gymnasium

DREAM_ID = "twm_tf/Dream-v0"

if DREAM_ID not in gymnasium.registry:
    gymnasium.register(id=DREAM_ID, entry_point="twm_tf.envs.dream:DreamEnv")

"""The harness's files as twm-tf inputs: weights from an init .npz, planned windows as a Batch."""

import numpy as np
import tensorflow as tf

from twm_tf import learner as learner_lib
from twm_tf import world_model as world_model_lib
from twm_tf.run import checkpoint


def load_weights(learner: learner_lib.Learner, path: str) -> None:
    """Assigns every trainable variable of `learner` from an npz of weights/<model>/<path>."""
    with np.load(path) as data:
        for name, model in learner.models.items():
            for key, variable in checkpoint.variables_by_path(model).items():
                if variable.trainable:
                    variable.assign(data[f"weights/{name}/{key}"])


def to_batch(windows: dict) -> world_model_lib.Batch:
    """plan.py's windows ([N, L] arrays, frames [N, L, 4, 64, 64]) as the world model's Batch."""
    return world_model_lib.Batch(
        frames=tf.constant(windows["frames"]),
        actions=tf.constant(windows["actions"], tf.int32),
        rewards=tf.constant(windows["rewards"], tf.float32),
        terminated=tf.constant(windows["terminated"]),
        dones=tf.constant(windows["terminated"] | windows["truncated"]),
    )

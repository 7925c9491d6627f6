"""The checkpoint layout of a training run (twm_tf.agent writes it, twm_tf.export reads it)."""

import os

import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic


def model_weights(**models) -> tf.train.Checkpoint:
    """A checkpoint node holding every variable of each Keras model, by position.

    Keras 3 models do not expose all their sublayers to tf.train.Checkpoint's object graph (nested
    models and layers in lists go missing), and variable names depend on how many layers the
    process built before. Listing `model.variables` (weights and the Dropout RNG states) in their
    construction order is complete and stable across processes.
    """
    return tf.train.Checkpoint(**{name: list(m.variables) for name, m in models.items()})


def training_checkpoint(
    world_model: world_model_lib.WorldModel, ac: actor_critic.ActorCritic, **state
) -> tf.train.Checkpoint:
    """The checkpoint layout of a run: all model weights, all optimizers, plus `state`."""
    return tf.train.Checkpoint(
        models=model_weights(
            observation=world_model.observation,
            dynamics=world_model.dynamics,
            actor=ac.actor,
            critic=ac.critic,
        ),
        optimizers=tf.train.Checkpoint(
            observation=world_model.obs_optimizer.adam,
            dynamics=world_model.dyn_optimizer.adam,
            actor=ac.actor_optimizer.adam,
            critic=ac.critic_optimizer.adam,
        ),
        **state,
    )


def locate(run_dir: str) -> tuple[config_lib.Config, str]:
    """The config of a run directory and its newest checkpoint prefix (checkpoints/ckpt-N).

    Raises:
        FileNotFoundError: one line naming run_dir, if it has no config.json or no checkpoint.
    """
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"no config.json in {run_dir}: not a launch.train run directory")
    config = config_lib.load(config_path)
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {run_dir}/checkpoints; let the run reach config.checkpoint_every="
            f"{config.checkpoint_every} env steps or stop it with Ctrl-C (which saves)"
        )
    return config, checkpoint

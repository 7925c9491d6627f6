"""Rebuilds a training run's world model and actor from its latest checkpoint (for analysis)."""

from typing import NamedTuple

import tensorflow as tf
from absl import logging

from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf import config as config_lib
from twm_tf import precision
from twm_tf.run import run_dir as run_dir_lib
from twm_tf import world_model as world_model_lib
from twm_tf.envs import atari
from twm_tf.models import actor_critic


class RunModels(NamedTuple):
    """The models of a run that analysis needs: the whole world model and the policy."""

    config: config_lib.Config
    world_model: world_model_lib.WorldModel
    actor: actor_critic.Actor
    action_meanings: tuple[str, ...]
    checkpoint: str


def load_run(run_dir: str) -> RunModels:
    """Restores the observation model, dynamics model and actor of a run, in float32.

    The models are rebuilt from the run's config.json; optimizers and the critic are skipped.

    Raises:
      FileNotFoundError: if run_dir has no config.json or no checkpoint.
      checkpoint.CheckpointMismatch: naming each variable the checkpoint lacks or has extra.
    """
    config, checkpoint = checkpoint_lib.locate(run_dir)
    env = atari.from_config(config, training=False, seed=config.seed)
    action_meanings = tuple(env.action_meanings)
    env.close()
    # Variables are float32 under every policy; float32 compute keeps the analysis exact.
    with precision.policy("float32"):
        world_model = world_model_lib.WorldModel(config, len(action_meanings))
        actor = actor_critic.Actor(config, len(action_meanings))
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))  # Creates variables.
    checkpoint_lib.restore_models(
        checkpoint, observation=world_model.observation, dynamics=world_model.dynamics, actor=actor
    )
    logging.info("restored the world model and actor from %s", checkpoint)
    return RunModels(config, world_model, actor, action_meanings, checkpoint)


def write_run(
    run_dir: str,
    config: config_lib.Config,
    world_model: world_model_lib.WorldModel,
    ac: actor_critic.ActorCritic,
) -> str:
    """Saves models in the run-dir layout `load_run` reads (config.json, checkpoints/ckpt-N).

    For models trained outside twm_tf.trainer (tests, notebooks); returns the checkpoint prefix.
    """
    config.save(run_dir)
    checkpoint = checkpoint_lib.training_checkpoint(*checkpoint_lib.parts(world_model, ac))
    directory = run_dir_lib.path(run_dir, run_dir_lib.CHECKPOINTS)
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    return manager.save()

"""Rebuilds a training run's world model and actor from its latest checkpoint (for analysis)."""

import os
from typing import NamedTuple

import tensorflow as tf
from absl import logging

from twm_tf import checkpoint as checkpoint_lib
from twm_tf import config as config_lib
from twm_tf import export
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

    Uses the run's layout (`checkpoint.training_checkpoint`: each model's variables by position),
    so the models are rebuilt from the run's config.json. Optimizers and the critic are skipped.

    Raises:
      FileNotFoundError: if run_dir has no config.json or no checkpoint.
      AssertionError: if the checkpoint lacks a variable of these models.
    """
    config, checkpoint = checkpoint_lib.locate(run_dir)
    env = atari.from_config(config, training=False, seed=config.seed)
    action_meanings = tuple(env.action_meanings)
    env.close()
    # Variables are float32 under every policy; float32 compute keeps the analysis exact.
    with export.precision_policy("float32"):
        world_model = world_model_lib.WorldModel(config, len(action_meanings))
        actor = actor_critic.Actor(config, len(action_meanings))
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))  # Creates variables.
    graph = tf.train.Checkpoint(
        models=checkpoint_lib.model_weights(
            observation=world_model.observation, dynamics=world_model.dynamics, actor=actor
        )
    )
    graph.restore(checkpoint).assert_existing_objects_matched().expect_partial()
    logging.info("restored the world model and actor from %s", checkpoint)
    return RunModels(config, world_model, actor, action_meanings, checkpoint)


def write_run(
    run_dir: str,
    config: config_lib.Config,
    world_model: world_model_lib.WorldModel,
    ac: actor_critic.ActorCritic,
) -> str:
    """Saves models in the run-dir layout `load_run` reads (config.json, checkpoints/ckpt-N).

    For models trained outside twm_tf.agent (tests, notebooks); returns the checkpoint prefix.
    """
    config.save(run_dir)
    checkpoint = checkpoint_lib.training_checkpoint(world_model, ac)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 2)
    return manager.save()

"""Rebuilds a training run's models from its latest checkpoint: for analysis, export, evaluation."""

from typing import NamedTuple

import tensorflow as tf
from absl import logging

from twm_tf import config as config_lib
from twm_tf import learner as learner_lib
from twm_tf import precision
from twm_tf import world_model as world_model_lib
from twm_tf.envs import atari
from twm_tf.models import actor_critic
from twm_tf.models import observation
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import run_dir as run_dir_lib


class RunModels(NamedTuple):
    """A run's models as `load_run` restores them (the critic and the optimizers never)."""

    config: config_lib.Config
    world_model: world_model_lib.WorldModel | None  # None when only the policy was asked for.
    obs_model: observation.ObservationModel
    actor: actor_critic.Actor
    action_meanings: tuple[str, ...]
    checkpoint: str


def load_run(run_dir: str, world_model: bool = True, as_trained: bool = False) -> RunModels:
    """Rebuilds a run's models from its config.json and restores its latest checkpoint into them.

    Args:
      run_dir: a launch.train run directory.
      world_model: restore the whole world model (observation and dynamics models, for analysis
        and the dream) or, if False, only the policy (observation model and actor, for export
        and evaluation).
      as_trained: build the models in the run's config.precision, as the run acted and
        evaluated; otherwise in float32 (variables are float32 under every policy, so float32
        compute keeps analysis and export exact).

    Raises:
      FileNotFoundError: if run_dir has no config.json or no checkpoint.
      checkpoint.CheckpointMismatch: naming each variable the checkpoint lacks or has extra.
    """
    config, checkpoint = checkpoint_lib.locate(run_dir)
    env = atari.from_config(config, training=False, seed=config.seed)
    action_meanings = tuple(env.action_meanings)
    env.close()
    wm = None
    with precision.policy(config.precision if as_trained else "float32"):
        if world_model:
            wm = world_model_lib.WorldModel(config, len(action_meanings))
            obs_model = wm.observation
        else:
            obs_model = observation.ObservationModel.from_twm_config(config)
        actor = actor_critic.Actor.from_twm_config(config, len(action_meanings))
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))  # Creates variables.
    models = {"observation": obs_model, "actor": actor}
    if wm is not None:
        models["dynamics"] = wm.dynamics
    checkpoint_lib.restore_models(checkpoint, **models)
    logging.info("restored %s from %s", ", ".join(models), checkpoint)
    return RunModels(config, wm, obs_model, actor, action_meanings, checkpoint)


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
    checkpoint = checkpoint_lib.training_checkpoint(*learner_lib.parts(world_model, ac))
    directory = run_dir_lib.path(run_dir, run_dir_lib.CHECKPOINTS)
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    return manager.save()

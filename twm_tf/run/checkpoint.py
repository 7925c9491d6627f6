"""A training run's checkpoint: what it holds, how it is saved, and how it is read back.

    checkpoints/ckpt-N.index, ckpt-N.data-*   models, optimizers, generator, counters, loop state
    checkpoints/replay-N.bin                 the replay buffer when ckpt-N was written

Model variables are keyed by their layers' names (`observation/encoder/conv_0/kernel`), so a
variable that is missing, renamed or unexpected is an error naming it rather than a silent
restore into another same-shaped layer. `Saver` writes the replay file first and the checkpoint
that names it second (crash-safe order) and keeps the two newest; on resume it takes the newest
pair that reads back completely, warning about each damaged one it skips.
"""

import os
import re

import tensorflow as tf
from absl import logging

from twm_tf import config as config_lib
from twm_tf import errors
from twm_tf import faults
from twm_tf import files
from twm_tf.run import run_dir as run_dir_lib

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointMismatch(errors.RunError, ValueError):
    """A checkpoint's model variables differ from the models being restored."""


class NoUsableCheckpoint(errors.RunError, RuntimeError):
    """Every checkpoint of a run directory is damaged."""


class SaveFailed(errors.RunError, RuntimeError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is intact."""


def variables_by_path(model) -> dict[str, tf.Variable]:
    """Every variable of a Keras model keyed by the names of the layers that own it.

    Keys are relative to the model, like `transformer/block_0/ffn_in/kernel`; a dropout layer's
    RNG state is `<its layer path>/rng`. They are built from layer names rather than Keras' variable
    paths, whose automatic parts (`seed_generator_7`, `dense_3`) depend on how many layers the
    process built before; so every layer that owns a variable has a name unique among its
    siblings.

    Raises:
      ValueError: naming a key that two variables share, or a variable no layer owns.
    """
    variables = {}

    def visit(layer, prefix: str) -> None:
        owned = [*layer._trainable_variables, *layer._non_trainable_variables]
        seed_generator = getattr(layer, "seed_generator", None)
        keyed = [(prefix + v.name, v) for v in owned]
        if seed_generator is not None:
            keyed.append((prefix + "rng", seed_generator.state))
        for key, variable in keyed:
            if key in variables:
                raise ValueError(f"two variables of {model.name} have the key {key}")
            variables[key] = variable
        for sublayer in layer._layers:
            visit(sublayer, f"{prefix}{sublayer.name}/")

    visit(model, "")
    unkeyed = {id(v) for v in model.variables} - {id(v) for v in variables.values()}
    if unkeyed:
        names = [v.path for v in model.variables if id(v) in unkeyed]
        raise ValueError(f"variables of {model.name} that no sublayer owns: {names}")
    return variables


def model_weights(**models) -> tf.train.Checkpoint:
    """A checkpoint node per model (by keyword) holding its variables by path."""
    return tf.train.Checkpoint(
        **{
            name: tf.train.Checkpoint(**{"weights": variables_by_path(m)})
            for name, m in models.items()
        }
    )


def _unescape(name: str) -> str:
    """Inverts tf.train.Checkpoint's escaping of object names ('/' -> '.S', '.' -> '..')."""
    return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1), name)


def saved_paths(checkpoint_path: str, model: str) -> set[str]:
    """The variable paths of `model` (a `model_weights` keyword) stored in a checkpoint."""
    prefix = f"models/{model}/weights/"
    return {
        _unescape(key[len(prefix) : -len(_VALUE_SUFFIX)])
        for key in tf.train.list_variables(checkpoint_path)
        for key in [key[0]]
        if key.startswith(prefix) and key.endswith(_VALUE_SUFFIX)
    }


def check_models(checkpoint_path: str, **models) -> None:
    """Raises CheckpointMismatch naming every variable one side has and the other lacks."""
    problems = []
    for name, model in models.items():
        expected, saved = set(variables_by_path(model)), saved_paths(checkpoint_path, name)
        if missing := sorted(expected - saved):
            problems.append(f"{name} lacks {', '.join(missing)}")
        if unexpected := sorted(saved - expected):
            problems.append(f"{name} has unexpected {', '.join(unexpected)}")
    if problems:
        raise CheckpointMismatch(
            f"checkpoint {checkpoint_path} does not fit these models: {'; '.join(problems)}"
        )


def restore_models(checkpoint_path: str, **models) -> None:
    """Restores only the named models' variables from a training checkpoint, checked by path.

    Raises:
      CheckpointMismatch: the checkpoint's variables differ from the models'.
      files.FileError: the checkpoint cannot be read (truncated, corrupted, missing a file) or
        its variables have other shapes.
    """
    try:
        check_models(checkpoint_path, **models)
        checkpoint = tf.train.Checkpoint(models=model_weights(**models))
        checkpoint.restore(checkpoint_path).expect_partial()
    except CheckpointMismatch:
        raise
    except Exception as error:  # noqa: BLE001 (damage shows as many error types, as in restore)
        raise files.FileError(
            f"checkpoint {checkpoint_path} cannot be read into the run's models "
            f"({type(error).__name__}: {files.reason(error)[:200]}): a damaged file, or one of "
            "another config"
        ) from None


def training_checkpoint(models: dict, optimizers: dict, **state) -> tf.train.Checkpoint:
    """The checkpoint layout of a run: model weights by path, the optimizers, plus `state`."""
    return tf.train.Checkpoint(
        models=model_weights(**models), optimizers=tf.train.Checkpoint(**optimizers), **state
    )


def locate(run_dir: str) -> tuple[config_lib.Config, str]:
    """The config of a run directory and its newest checkpoint prefix (checkpoints/ckpt-N).

    Raises:
        FileNotFoundError: one line naming run_dir, if it has no config.json or no checkpoint.
    """
    config_path = run_dir_lib.path(run_dir, run_dir_lib.CONFIG)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"no config.json in {run_dir}: not a launch.train run directory")
    config = config_lib.load(config_path)
    checkpoint = tf.train.latest_checkpoint(run_dir_lib.path(run_dir, run_dir_lib.CHECKPOINTS))
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {run_dir}/checkpoints; let the run reach config.checkpoint_every="
            f"{config.checkpoint_every} env steps or stop it with Ctrl-C (which saves)"
        )
    return config, checkpoint


def replay_path(checkpoint_path: str) -> str:
    """The replay file saved with checkpoint `<dir>/ckpt-N`: `<dir>/replay-N.bin`."""
    directory, name = os.path.split(checkpoint_path)
    return os.path.join(directory, f"replay-{name.rsplit('-', 1)[1]}.bin")


class Saver:
    """Saves and restores a run's checkpoint together with its replay buffer.

    `models` are checked by variable path before each restore (`check_models`).
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, replay, directory: str, models: dict):
        self.checkpoint = checkpoint
        self.replay = replay
        self.directory = directory
        self._models = models
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self) -> str:
        """Writes the replay buffer, then the checkpoint that names it; keeps the two newest.

        Raises:
          SaveFailed: when either write fails (a full disk, a lost mount); the previous
            checkpoint and its replay file are untouched, and nothing of this save is left.
        """
        number = int(self.checkpoint.save_counter.numpy()) + 1
        replay_file = replay_path(os.path.join(self.directory, f"ckpt-{number}"))
        try:
            os.makedirs(self.directory, exist_ok=True)
            self.replay.save(replay_file)
            faults.point("checkpoint_write")
            path = self.manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            if os.path.exists(replay_file):
                os.remove(replay_file)  # Not named by any checkpoint; frees the space.
            raise SaveFailed(
                f"saving checkpoint {number} in {self.directory} failed ({error}); the previous "
                f"checkpoint ({self.latest}) is intact: free space and run the same command to "
                "resume from it"
            ) from error
        faults.point("after_checkpoint")
        keep = {os.path.basename(replay_path(p)) for p in self.manager.checkpoints}
        for name in os.listdir(self.directory):
            if name.startswith("replay-") and name not in keep:
                os.remove(os.path.join(self.directory, name))
        return path

    def restore(self) -> str | None:
        """Restores the newest checkpoint that reads back completely; None for a new run.

        A damaged checkpoint or replay file (truncated, corrupted, missing) is skipped with a
        warning naming it; nothing is deleted, and the next save overwrites it.

        Raises:
          CheckpointMismatch: the models differ from the checkpoint's (a code change, not damage).
          NoUsableCheckpoint: every checkpoint is damaged; one line naming them.
        """
        candidates = list(reversed(self.manager.checkpoints))
        damaged = []
        for path in candidates:
            try:
                check_models(path, **self._models)
                self.replay.load(replay_path(path))
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (CheckpointMismatch, run_dir_lib.RunDirError):
                raise  # Not damage: the code or the seed derivation differs.
            except Exception as error:  # noqa: BLE001 (damage shows as many error types)
                first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                logging.warning("skipping damaged checkpoint %s: %s", path, first_line)
                damaged.append(f"{path} ({type(error).__name__}: {first_line[:200]})")
                continue
            if damaged:
                logging.warning("resumed from the older checkpoint %s", path)
            return path
        if damaged:
            raise NoUsableCheckpoint(
                f"no usable checkpoint in {self.directory}: {'; '.join(damaged)}; nothing was "
                "deleted"
            )
        return None

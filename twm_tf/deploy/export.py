"""Policy-only SavedModel: uint8 frames -> action, with the encoder and the actor inside.

The SavedModel needs neither twm_tf nor the world model to run (launch/play.py needs only TF):

    policy = tf.saved_model.load(path)
    out = policy.signatures["serving_default"](frames=frames)     # sampled actions
    out = policy.signatures["greedy"](frames=frames)              # argmax actions
    out["action"]  [B] int32,  out["probs"]  [B, A] float32
    policy.logits(frames)                                         # [B, A] float32
    json.loads(policy.metadata_json().numpy())                    # game, action meanings, config
    policy.set_seed(tf.constant(7, tf.int64))                     # reproducible sampling

`frames` is uint8 [B, stack, 64, 64], the most recent preprocessed frames, oldest first
(envs/atari.py). The encoder takes the mode of z, as in evaluation (docs/spec.md, "Environment").
The same metadata is also the asset `assets/metadata.json`.

The directory also holds `policy.tflite`, the same logits for LiteRT, which takes a batch-1 step
in half to three quarters of the SavedModel's time and needs no TensorFlow
(litert_policy.LiteRtPolicy, `launch/play.py --runtime=litert`).

Input contract: the signatures' TensorSpec, checked for every input. A tf.Tensor of another rank,
frame size or stack depth fails in the graph with InvalidArgumentError "frames must be
TensorSpec(shape=(None, 4, 64, 64), dtype=tf.uint8, name='frames'), got shape [...]" (a signature
is a concrete function, which TF would otherwise run on any shape); one of another dtype with TF's
InvalidArgumentError "expected to be a uint8 tensor"; an array or list of another shape with
TypeError naming the same TensorSpec. NumPy arrays of another dtype, however, are cast to uint8 by
TF in the caller's process before the model sees them (float frames in [0, 1] would become zeros),
so callers that may hold non-uint8 arrays check them first, as launch/play.py and
litert_policy.LiteRtPolicy do. policy.tflite refuses frames of another shape too: its interpreter
checks the dtype and the shape it was resized to, and the model fails on a RESHAPE when resized to
anything but [B, 4, 64, 64].
"""

import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from twm_tf import config as config_lib
from twm_tf import files
from twm_tf.deploy import litert_policy
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import observation
from twm_tf.run import restore
from twm_tf.run import run_dir as run_dir_lib

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1  # Of the signatures and metadata; bump on any change play.py must know about.


class PolicyModule(tf.Module):
    """Encoder + actor behind fixed signatures; the only variables besides theirs: an RNG state."""

    def __init__(
        self,
        encoder: observation.Encoder,
        actor: actor_critic.Actor,
        metadata: dict,
        metadata_path: str,
        seed: int,
        jit_compile: bool = True,
    ):
        super().__init__(name="twm_policy")
        self.encoder = encoder
        self.actor = actor
        self.metadata = tf.saved_model.Asset(metadata_path)
        # A stateful generator: the deployed policy draws fresh actions on every call, and
        # `set_seed` makes a player's episodes reproducible.
        self.generator = tf.random.Generator.from_seed(seed, alg="philox")
        spec = tf.TensorSpec(
            [None, metadata["frame_stack"], metadata["frame_size"], metadata["frame_size"]],
            tf.uint8,
            name="frames",
        )
        self._spec = spec
        metadata_json = json.dumps(metadata, sort_keys=True)
        # XLA fuses the batch-1 convs and matmuls, a faster step than the plain graph's (timings
        # in docs/benchmarks.md, "Policy step"). Sampling stays outside, with the stateful
        # generator it advances.
        self.logits = tf.function(self._logits, input_signature=[spec], jit_compile=jit_compile)
        self.sample = tf.function(self._sample, input_signature=[spec])
        self.greedy = tf.function(self._greedy, input_signature=[spec])
        self.metadata_json = tf.function(lambda: tf.constant(metadata_json), input_signature=[])
        self.set_seed = tf.function(
            self._set_seed, input_signature=[tf.TensorSpec([], tf.int64, name="seed")]
        )

    def _logits(self, frames: tf.Tensor) -> tf.Tensor:
        """Returns the action logits [B, A] of frames [B, S, 64, 64] uint8."""
        return self.actor.from_classes(distributions.latent_mode_classes(self.encoder(frames)))

    def litert_model(self) -> bytes:
        """The logits as a LiteRT flatbuffer: uint8 frames [B, S, 64, 64] -> [B, A] float32."""
        # Traced without XLA: the converter lowers TF ops, not XLA clusters. Given this module
        # (whose RNG state is a mutable variable) as the trackable, the converter kept every
        # variable as an uninitialized resource and the model returned NaN.
        logits = tf.function(
            lambda frames: self._logits(self._reshape_guard(frames)),
            input_signature=self.logits.input_signature,
        )
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [logits.get_concrete_function()], logits
        )
        return converter.convert()

    def _shape_mismatch(self, frames: tf.Tensor) -> tf.Tensor:
        """How many of the rank and sizes S, H, W of `frames` differ from the spec's (int32 [])."""
        shape = tf.shape(frames)
        padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)[:4]  # [B, S, H, W], 0s past rank
        expected = self._spec.shape[1:].as_list()
        mismatch = tf.reduce_sum(tf.cast(tf.not_equal(padded[1:], expected), tf.int32))
        return mismatch + tf.cast(tf.not_equal(tf.shape(shape)[0], 4), tf.int32)

    def _checked(self, frames: tf.Tensor) -> tf.Tensor:
        """`frames` once their runtime shape is the spec's; InvalidArgumentError naming it if not.

        A signature is a concrete function, which TF runs on a tensor of any shape (only NumPy
        arrays are cast to its spec): [3, 4, 32, 64] frames made one scrambled action.
        """
        # Without the spec's static shape, which grappler would fold the rank check with.
        frames = tf.raw_ops.PlaceholderWithDefault(input=frames, shape=None)
        check = tf.debugging.Assert(
            tf.equal(self._shape_mismatch(frames), 0),
            [f"frames must be {self._spec!r}, got shape", tf.shape(frames)],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            return tf.reshape(frames, [-1, *self._spec.shape[1:].as_list()])

    def _reshape_guard(self, frames: tf.Tensor) -> tf.Tensor:
        """`frames` reshaped to the spec, which fails (RESHAPE) unless their shape is the spec's.

        LiteRT has no assert, and an interpreter resized to another frame size would run: the
        batch of the reshape is made larger than the input unless nothing mismatches.
        """
        batch = tf.concat([tf.shape(frames), [1]], 0)[0]  # 1 for a scalar.
        batch += self._shape_mismatch(frames) * (tf.size(frames) + 1)
        return tf.reshape(frames, tf.stack([batch, *self._spec.shape[1:].as_list()]))

    def _sample(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self.logits(self._checked(frames))
        action = distributions.sample_actions(logits, self.generator.make_seeds(1)[:, 0])
        return {"action": action, "probs": tf.nn.softmax(logits)}

    def _greedy(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self.logits(self._checked(frames))
        action = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"action": action, "probs": tf.nn.softmax(logits)}

    def _set_seed(self, seed: tf.Tensor) -> tf.Tensor:
        self.generator.reset_from_key_counter(seed, tf.zeros([2], tf.int64))
        return seed


def metadata(config: config_lib.Config, action_meanings: list[str] | tuple[str, ...]) -> dict:
    """What a player needs besides the signatures: game, actions, preprocessing, config."""
    return {
        "format_version": FORMAT_VERSION,
        "game": config.game,
        "action_meanings": list(action_meanings),
        "num_actions": len(action_meanings),
        "frame_stack": config.frame_stack,
        "frame_size": config.frame_size,
        "frame_skip": config.frame_skip,
        "max_episode_steps": config.max_episode_steps,
        "config": json.loads(config.to_json()),
    }


def _write_saved_model(
    staging: str,
    obs_model: observation.ObservationModel,
    actor: actor_critic.Actor,
    config: config_lib.Config,
    info: dict,
    jit_compile: bool,
) -> str:
    """Writes the SavedModel and its policy.tflite under `staging`; returns the SavedModel dir."""
    metadata_path = os.path.join(staging, METADATA_FILE)
    with open(metadata_path, "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    module = PolicyModule(obs_model.encoder, actor, info, metadata_path, config.seed, jit_compile)
    saved = os.path.join(staging, "saved_model")
    tf.saved_model.save(
        module, saved, signatures={"serving_default": module.sample, "greedy": module.greedy}
    )
    with open(os.path.join(saved, litert_policy.MODEL_FILE), "wb") as f:
        f.write(module.litert_model())
    return saved


def export_policy(
    path: str,
    obs_model: observation.ObservationModel,
    actor: actor_critic.Actor,
    config: config_lib.Config,
    action_meanings: list[str] | tuple[str, ...],
    jit_compile: bool = True,
) -> str:
    """Writes the policy SavedModel to `path`, atomically, and returns `path`.

    The SavedModel is written to a staging directory beside `path` and renamed into place, so a
    crash leaves either the previous export or the new one at `path`, never a partial one.

    Args:
        path: the SavedModel directory; an existing one is replaced.
        obs_model: its encoder is exported (the decoder is not).
        actor: the policy network, with actor.num_actions == len(action_meanings).
        config: the training config (frame settings, seed), stored in the metadata.
        action_meanings: ALE names of the actions, e.g. ("NOOP", "FIRE", ...).
        jit_compile: XLA-compile the encoder and actor (faster on CPU; every new batch size
            compiles once, ~0.5 s).

    Raises:
        ValueError: if the actor's action count differs from len(action_meanings).
        files.FileError: `path` is in the way (see `check_output`) or the write failed (a full
            disk); an earlier export at `path` is then intact.
    """
    if actor.num_actions != len(action_meanings):
        raise ValueError(
            f"the actor has {actor.num_actions} actions, action_meanings has "
            f"{len(action_meanings)}: {list(action_meanings)}"
        )
    check_output(path)
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    staging = None
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.staging-")
        saved = _write_saved_model(
            staging, obs_model, actor, config, metadata(config, action_meanings), jit_compile
        )
        if os.path.exists(path):
            # Two renames: between them nothing is at `path`, which readers see as "no export".
            os.replace(path, os.path.join(staging, "previous"))
        os.replace(saved, path)
    except (OSError, tf.errors.OpError) as error:  # A full disk, an unwritable directory.
        raise files.FileError(
            f"writing the export {path} failed ({files.reason(error)}); "
            f"{'the previous export is intact' if os.path.exists(path) else 'nothing was written'}"
        ) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    logging.info("exported the %s policy to %s", config.game, path)
    return path


def is_export(path: str) -> bool:
    """Whether `path` holds an export of this module (its metadata names a format version)."""
    return files.is_json_with(os.path.join(path, "assets", METADATA_FILE), "format_version")


def check_output(path: str, flag: str = "--output") -> None:
    """Refuses an export path that is not missing, an empty directory or an earlier export.

    An export replaces the whole directory, so anything else there (a file, another program's
    directory) would be lost to a mistyped path.

    Raises:
        files.FileError: naming `flag` and the path.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise files.FileError(f"{flag}={path} is a file, not an export directory")
    if os.path.isdir(path) and os.listdir(path) and not is_export(path):
        raise files.FileError(
            f"{flag}={path} is a directory that holds no export of launch.export_policy "
            "(no assets/metadata.json); nothing was overwritten: pick another directory"
        )
    files.check_writable(os.path.dirname(os.path.abspath(path)), flag)


def export_from_run(run_dir: str, path: str | None = None, jit_compile: bool = True) -> str:
    """Exports the policy of the latest checkpoint of a training run.

    Args:
        run_dir: a launch/train.py run directory (config.json and checkpoints/).
        path: the SavedModel directory; default <run_dir>/policy.
        jit_compile: see `export_policy`.

    Returns:
        The SavedModel directory.

    Raises:
        FileNotFoundError: if run_dir has no config.json or no checkpoint.
        checkpoint.CheckpointMismatch: if the checkpoint does not fit the run models.
    """
    path = path or run_dir_lib.path(run_dir, run_dir_lib.POLICY)
    check_output(path)  # Before the models are built.
    run = restore.load_run(run_dir, world_model=False)
    return export_policy(
        path,
        run.obs_model,
        run.actor,
        run.config,
        run.action_meanings,
        jit_compile,
    )


def measure_latency(
    policy_dir: str,
    iterations: int = 1_000,
    signature: str = "serving_default",
    runtime: str = "saved_model",
    num_threads: int = 1,
) -> dict[str, float]:
    """Times one policy step of an exported policy at batch 1, as a player calls it.

    The SavedModel uses the calling process's TF threading; launch/play.py runs it on one intra-op
    thread, which is faster at batch 1 (`tf.config.threading` must be set before TF runs its
    first op).

    Args:
        policy_dir: an exported policy directory.
        iterations: timed calls, after 20 warm-up calls.
        signature: "serving_default" (sampled) or "greedy".
        runtime: "saved_model" or "litert" (policy.tflite, see litert_policy).
        num_threads: LiteRT's threads.

    Returns:
        Milliseconds per call: median, mean, p90 and min.

    Raises:
        ValueError: for an unknown runtime or signature.
    """
    if signature not in ("serving_default", "greedy"):
        raise ValueError(f"signature: expected serving_default or greedy, got {signature!r}")
    if runtime == "saved_model":
        policy = tf.saved_model.load(policy_dir)
        saved_step = policy.signatures[signature]
        shape = saved_step.structured_input_signature[1]["frames"].shape[1:]

        def step(frames):
            return saved_step(frames=frames)["action"].numpy()

    elif runtime == "litert":
        lite = litert_policy.LiteRtPolicy(policy_dir, num_threads)
        shape = lite.frame_shape

        def step(frames):
            return lite.act(frames, greedy=signature == "greedy")[0]

    else:
        raise ValueError(f"runtime: expected saved_model or litert, got {runtime!r}")
    frames = np.random.default_rng(0).integers(0, 256, (1, *shape), dtype=np.uint8)
    for _ in range(20):
        step(frames)
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        step(frames)
        times[i] = time.perf_counter() - start
    times *= 1e3
    return {
        "median_ms": float(np.median(times)),
        "mean_ms": float(np.mean(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "min_ms": float(np.min(times)),
    }

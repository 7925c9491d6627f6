"""Plays Atari games with an exported TWM policy; runs without twm_tf.

    python launch/play.py --policy=runs/pong/policy --episodes=10 --video=pong.mp4

The policy is a directory from launch/export_policy.py. `--runtime=saved_model` runs its SavedModel
with TensorFlow; `--runtime=litert` runs its policy.tflite with LiteRT (ai-edge-litert), faster at
batch 1 and without importing TensorFlow. Besides the runtime only gymnasium, ale-py, cv2, imageio
and NumPy are imported, so this file works wherever the export is copied; that is why it repeats
the evaluation-mode preprocessing of twm_tf/envs/atari.py (launch/play_test.py checks that both
give the same frames): frame skip with a max over the last two frames, 64x64 area resize, a stack
of the latest frames, FIRE at reset and after a life loss, an episode = a game.
"""

import json
import os
import tempfile
import time

import ale_py
import cv2
import gymnasium as gym
import imageio
import numpy as np
from absl import app
from absl import flags

_POLICY = flags.DEFINE_string("policy", None, "Policy directory from export_policy.")
_RUNTIME = flags.DEFINE_enum(
    "runtime", "saved_model", ["saved_model", "litert"], "Runs the SavedModel or policy.tflite."
)
_EPISODES = flags.DEFINE_integer("episodes", 1, "Games to play.", lower_bound=1)
_GREEDY = flags.DEFINE_bool("greedy", False, "Take the most likely action instead of sampling.")
_VIDEO = flags.DEFINE_string("video", None, "Write the first game to this .mp4 or .gif file.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seeds the sampling and game i's emulator (seed + i).", lower_bound=0
)
_MAX_STEPS = flags.DEFINE_integer(
    "max_steps",
    None,
    "Agent steps per game before it is cut (default: the training time limit).",
    lower_bound=1,
)
_THREADS = flags.DEFINE_integer(
    "threads",
    1,
    "Threads of the runtime: TF intra-op threads (batch-1 steps are fastest on one, 0 = TF's "
    "default) or LiteRT's (XNNPACK) threads.",
    lower_bound=0,
)

_FIRE = 1


class Game:
    """One ALE game, preprocessed as twm_tf.envs.atari.make(game, training=False, ...) does."""

    def __init__(self, game: str, seed: int, frame_skip: int, frame_stack: int, frame_size: int):
        gym.register_envs(ale_py)
        self._env = gym.make(
            f"ALE/{game}-v5",
            frameskip=1,
            repeat_action_probability=0.0,
            full_action_space=False,
            obs_type="grayscale",
            max_num_frames_per_episode=0,
        )
        self._env.reset(seed=seed)
        self.ale = self._env.unwrapped.ale
        self._actions = self.ale.getMinimalActionSet()
        meanings = self._env.unwrapped.get_action_meanings()
        self.action_meanings = list(meanings)
        self._has_fire = len(meanings) >= 3 and meanings[1] == "FIRE"
        self._skip, self._size = frame_skip, frame_size
        self._screens = np.zeros((2, *self.ale.getScreenDims()), np.uint8)
        self._stack = np.zeros((frame_stack, frame_size, frame_size), np.uint8)
        self._lives = 0

    def reset(self) -> np.ndarray:
        """Starts the game; returns the first observation [stack, size, size] uint8."""
        self.ale.reset_game()
        self.ale.getScreenGrayscale(self._screens[0])
        self._screens[1] = self._screens[0]
        if self._has_fire:  # FIRE, then action 2 (baselines' FireResetEnv).
            self._act(_FIRE)
            self._act(2)
        self._lives = self.ale.lives()
        self._stack[:] = self._frame()
        return self._stack.copy()

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        """Returns (observation, raw reward, game over)."""
        reward = self._act(action)
        if self.ale.lives() < self._lives and self._has_fire and not self.ale.game_over():
            reward += self._act(_FIRE)  # Otherwise play stops until FIRE.
        self._lives = self.ale.lives()
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = self._frame()
        return self._stack.copy(), reward, self.ale.game_over()

    def _act(self, action: int) -> float:
        reward = 0.0
        for t in range(self._skip):
            reward += self.ale.act(self._actions[action])
            if self.ale.game_over():
                break
            if t >= self._skip - 2:
                self.ale.getScreenGrayscale(self._screens[t - self._skip + 2])
        return reward

    def _frame(self) -> np.ndarray:
        # Max over two frames: Atari sprites flicker between frames.
        pooled = np.maximum(self._screens[0], self._screens[1])
        return cv2.resize(pooled, (self._size, self._size), interpolation=cv2.INTER_AREA)


def check_frames(frames: np.ndarray, frame_shape: tuple[int, int, int]) -> None:
    """Raises ValueError unless frames are uint8 [1, *frame_shape]: runtimes may cast silently."""
    if frames.dtype != np.uint8 or frames.shape != (1, *frame_shape):
        got = f"{frames.dtype} {list(frames.shape)}"
        raise ValueError(f"policy expects uint8 frames {[1, *frame_shape]}, got {got}")


class SavedModelRuntime:
    """The export's SavedModel: frames [1, S, 64, 64] uint8 -> action, on TensorFlow."""

    def __init__(self, policy_dir: str, greedy: bool, seed: int, threads: int):
        import tensorflow as tf  # Here, so that the LiteRT runtime never loads TensorFlow.

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        policy = tf.saved_model.load(policy_dir)
        policy.set_seed(tf.constant(seed, tf.int64))
        self._step = policy.signatures["greedy" if greedy else "serving_default"]
        spec = self._step.structured_input_signature[1]["frames"]
        self.frames_spec = (spec.dtype.as_numpy_dtype, tuple(spec.shape[1:]))
        self.num_actions = self._step.structured_outputs["probs"].shape[-1]

    def __call__(self, frames: np.ndarray) -> int:
        return int(self._step(frames=frames)["action"][0])


class LiteRtRuntime:
    """The export's policy.tflite: frames [1, S, 64, 64] uint8 -> action on LiteRT, sampled here."""

    def __init__(self, policy_dir: str, greedy: bool, seed: int, threads: int):
        from ai_edge_litert import interpreter  # Only this runtime needs the package.

        self._interpreter = interpreter.Interpreter(
            model_path=os.path.join(policy_dir, "policy.tflite"), num_threads=threads or None
        )
        # The model's batch is dynamic; LiteRT plans it as 1 unless resized, as play needs.
        self._interpreter.allocate_tensors()
        frames, logits = (
            self._interpreter.get_input_details()[0],
            self._interpreter.get_output_details()[0],
        )
        self._input, self._output = frames["index"], logits["index"]
        self.frames_spec = (frames["dtype"], tuple(int(n) for n in frames["shape_signature"][1:]))
        self.num_actions = int(logits["shape"][-1])
        self._greedy = greedy
        self._rng = np.random.default_rng(seed)

    def __call__(self, frames: np.ndarray) -> int:
        self._interpreter.set_tensor(self._input, frames)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._output)[0].astype(np.float64)
        if self._greedy:
            return int(np.argmax(logits))
        probs = np.exp(logits - logits.max())
        return int(self._rng.choice(len(probs), p=probs / probs.sum()))


def _fail(message: str) -> None:
    raise SystemExit(f"play: {message}")


# What play reads from assets/metadata.json (twm_tf/deploy/export.py `metadata`), by type.
_METADATA_FIELDS = {
    "game": str,
    "action_meanings": list,
    "frame_stack": int,
    "frame_size": int,
    "frame_skip": int,
    "max_episode_steps": int,
}


def load_policy(policy_dir: str, runtime: str, greedy: bool, seed: int, threads: int):
    """The export's metadata and runtime, or one line: not an export, or a damaged one."""
    if not os.path.exists(os.path.join(policy_dir, "saved_model.pb")):
        _fail(
            f"--policy={policy_dir} is not an exported policy (no saved_model.pb); "
            "export one with launch/export_policy.py"
        )
    if runtime == "litert" and not os.path.exists(os.path.join(policy_dir, "policy.tflite")):
        _fail(
            f"--policy={policy_dir} has no policy.tflite for --runtime=litert (an export "
            "from before LiteRT support); export it again or use --runtime=saved_model"
        )
    damaged = f"--policy={policy_dir} is a damaged or partial export"
    again = "export it again with launch/export_policy.py"
    path = os.path.join(policy_dir, "assets", "metadata.json")
    try:
        with open(path, "rb") as f:
            info = json.loads(f.read())
    except (OSError, ValueError) as error:  # Missing, unreadable, not JSON.
        _fail(f"{damaged} ({path}: {error}); {again}")
    for name, kind in _METADATA_FIELDS.items():
        value = info.get(name) if isinstance(info, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool) or not value:
            _fail(f"{damaged} ({path} has no valid {name}); {again}")
        if kind is int and value < 1:
            _fail(f"{damaged} ({path}: {name} must be positive, got {value}); {again}")
    try:
        runner = (SavedModelRuntime if runtime == "saved_model" else LiteRtRuntime)(
            policy_dir, greedy, seed, threads
        )
    except Exception as error:  # noqa: BLE001 (a damaged model fails in the runtime's own ways)
        first = (str(error).strip().splitlines() or [""])[0][:200]
        _fail(f"{damaged} ({type(error).__name__}: {first}); {again}")
    frame_shape = (info["frame_stack"], info["frame_size"], info["frame_size"])
    if runner.frames_spec != (np.uint8, frame_shape):
        _fail(f"{damaged} (model input {runner.frames_spec}, metadata {frame_shape}); {again}")
    if runner.num_actions != len(info["action_meanings"]):
        _fail(f"{damaged} ({runner.num_actions} actions, metadata {info['action_meanings']})")
    return info, runner


def _check_video(path: str) -> None:
    """Refuses a --video path play could not write, or one it would overwrite, before playing."""
    if not path.endswith((".mp4", ".gif")):
        _fail(f"--video={path}: expected a file name ending in .mp4 or .gif")
    if os.path.lexists(path):
        _fail(f"--video={path} exists; play overwrites nothing: remove it or pick another name")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".play-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        _fail(f"--video={path}: cannot write in {directory} ({error.strerror or error})")


def _write_video(path: str, video: list[np.ndarray], fps: float) -> None:
    """Writes the video through a temporary file, so a full disk leaves no partial file.

    Neither writer raises on a full disk (Pillow's GIF writer fails in a destructor, ffmpeg only
    logs it), so the GIF is encoded in memory and written here, and the MP4 is read back.
    """
    stem, extension = os.path.splitext(os.path.basename(path))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=extension, prefix=f".{stem}.", dir=directory)
    os.close(fd)
    try:
        if extension == ".gif":
            data = imageio.mimwrite("<bytes>", video, format="GIF", duration=1000 / fps, loop=0)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        else:
            imageio.mimwrite(tmp, video, fps=fps, macro_block_size=2)
            with imageio.get_reader(tmp) as reader:
                frames = reader.count_frames()
            if frames != len(video):
                raise OSError(f"{frames} of {len(video)} frames read back")
        os.replace(tmp, path)
    except Exception as error:  # noqa: BLE001 (OSError, or the encoder's own on a full disk)
        os.remove(tmp)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        _fail(f"writing --video={path} failed ({first}); nothing was written")


def main(argv):
    del argv
    if _POLICY.value is None:
        _fail("--policy is required: a directory from launch/export_policy.py")
    if _VIDEO.value:
        _check_video(_VIDEO.value)
    info, policy = load_policy(
        _POLICY.value, _RUNTIME.value, _GREEDY.value, _SEED.value, _THREADS.value
    )
    frame_shape = (info["frame_stack"], info["frame_size"], info["frame_size"])
    max_steps = _MAX_STEPS.value or info["max_episode_steps"]
    returns, latencies = [], []
    for episode in range(_EPISODES.value):
        try:
            game = Game(info["game"], _SEED.value + episode, info["frame_skip"], *frame_shape[:2])
        except gym.error.Error as error:
            _fail(f"--policy={_POLICY.value}: its game {info['game']!r} cannot be made ({error})")
        if game.action_meanings != info["action_meanings"]:
            _fail(
                f"--policy={_POLICY.value} acts with {info['action_meanings']}, but "
                f"{info['game']}'s actions are {game.action_meanings}: a damaged export"
            )
        video = [] if _VIDEO.value and episode == 0 else None
        obs, total, steps, over = game.reset(), 0.0, 0, False
        while not over and steps < max_steps:
            if video is not None:
                video.append(game.ale.getScreenRGB())
            check_frames(obs[None], frame_shape)
            start = time.perf_counter()
            action = policy(obs[None])
            latencies.append(time.perf_counter() - start)
            obs, reward, over = game.step(action)
            total, steps = total + reward, steps + 1
        returns.append(total)
        print(f"episode {episode + 1}: return {total:g} in {steps} steps")
        if video is not None:
            _write_video(_VIDEO.value, video, fps=60 / info["frame_skip"])
            print(f"video of episode 1: {_VIDEO.value}")
    latency = 1e3 * np.array(latencies[1:] or latencies)  # The first call compiles.
    print(f"{info['game']}: mean return {np.mean(returns):g} over {len(returns)} episodes")
    print(
        f"policy step latency (batch 1): median {np.median(latency):.2f} ms, "
        f"p90 {np.percentile(latency, 90):.2f} ms"
    )


if __name__ == "__main__":
    app.run(main)

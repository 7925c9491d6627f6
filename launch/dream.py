"""Play inside a run's world model: from the keyboard, or watch its policy dream.

    python -m launch.dream --run_dir=runs/boxing                      # keys: w/a/s/d, space
    python -m launch.dream --run_dir=runs/boxing --input=agent --side_by_side --video=dream.mp4

The dream is twm_tf.envs.dream.DreamEnv ("twm_tf/Dream-v0"). --input=user plays it through
gymnasium.utils.play with the game's own key map (no key = NOOP, Escape quits, clicking a cell
of the latent grid sets that variable's class); --input=agent lets the run's policy act.
--video records either; with --input=agent it needs no window. --side_by_side (--start=game)
shows the real game taking the same actions left of the dream.
"""

import os

import gymnasium
import tensorflow as tf
from absl import app
from absl import flags

import launch
from twm_tf import envs
from twm_tf import files
from twm_tf.envs import dream
from twm_tf.envs import dream_play

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (launch/train.py).")
_INPUT = flags.DEFINE_enum("input", "user", ["user", "agent"], "Who acts: keyboard or policy.")
_START = flags.DEFINE_enum(
    "start",
    "game",
    list(dream.STARTS),
    "The real start: a fresh game of the run's game, its testdata recording, or the replay file.",
)
_CONTEXT = flags.DEFINE_integer(
    "context_steps", None, "Real steps before the start in memory (default memory_steps).", 0
)
_LATENT = flags.DEFINE_enum("latent", "sample", ["sample", "mode"], "Predicted latent fed back.")
_SIDE_BY_SIDE = flags.DEFINE_bool(
    "side_by_side", False, "Show the real game taking the same actions (--start=game)."
)
_VIDEO = flags.DEFINE_string("video", None, "Record to this .mp4 or .gif file.")
_STEPS = flags.DEFINE_integer("steps", 1_000, "--input=agent: steps at most.", 1)
_MAX_STEPS = flags.DEFINE_integer(
    "max_steps", None, "Steps before truncation (default: game's).", 1
)
_THRESHOLD = flags.DEFINE_float("terminal_threshold", 0.5, "Terminal below this discount.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the start, the latent samples and the policy.", lower_bound=0
)
_FPS = flags.DEFINE_integer(
    "fps", None, "Steps per second (default: the game's pace, 60 / frame_skip).", 1
)
_ZOOM = flags.DEFINE_integer("zoom", 4, "Screen pixels per frame pixel.", 1)
_PANEL = flags.DEFINE_bool("panel", True, "Show the latent grid, reward, discount, attention.")
_THREADS = flags.DEFINE_integer("threads", 1, "TF intra-op threads (0 = TF's default).", 0)
flags.mark_flag_as_required("run_dir")


def _never_ours(path: str) -> bool:
    del path
    return False  # dream overwrites no file


def main(argv):
    del argv
    launch.quiet_library_logs()
    video = _VIDEO.value
    if video:  # Refused now rather than after playing.
        if not video.endswith((".mp4", ".gif")):
            launch.fail(f"--video={video}: expected a file name ending in .mp4 or .gif")
        if os.path.lexists(video):
            launch.fail(f"--video={video} exists; dream overwrites nothing: pick another name")
        with launch.one_line_errors():
            files.check_writable(os.path.dirname(os.path.abspath(video)), "--video")
    window = _INPUT.value == "user" or not video
    if window:
        with launch.one_line_errors(RuntimeError):
            dream_play.check_display("or record without a window: --input=agent --video=FILE")
    if _THREADS.value:  # Batch-1 steps are fastest on one thread.
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    run = launch.load_run_or_fail(_RUN_DIR.value)
    with launch.one_line_errors(ValueError):
        env = gymnasium.make(
            envs.DREAM_ID,
            run=run,
            start=_START.value,
            context_steps=_CONTEXT.value,
            latent=_LATENT.value,
            terminal_threshold=_THRESHOLD.value,
            max_steps=_MAX_STEPS.value,
            side_by_side=_SIDE_BY_SIDE.value,
            render_mode="rgb_array",
            panel=_PANEL.value,
            zoom=_ZOOM.value,
        )
    fps = _FPS.value or env.metadata["render_fps"]
    images, rewards = [], []

    def on_step(action, info, image):
        del action
        rewards.append(info["reward_raw"])
        if video and _INPUT.value == "user":
            images.append(image)

    if _INPUT.value == "user":
        dream_play.play_keyboard(env, fps=fps, seed=_SEED.value, on_step=on_step)
    else:
        images = dream_play.play_agent(
            env, steps=_STEPS.value, fps=fps, window=window, seed=_SEED.value, on_step=on_step
        )
    env.close()
    print(f"{len(rewards)} dream steps, predicted return {sum(rewards):+.2f}")
    if video:
        with launch.one_line_errors(), files.output_file(video, "--video", _never_ours) as tmp:
            dream_play.write_video(tmp, images, fps)
        print(f"video: {video}")


if __name__ == "__main__":
    app.run(main)

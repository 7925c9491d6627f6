"""SIGKILLs a debug-preset training run again and again, resumes it, and checks it loses nothing.

    python -m launch.kill_anywhere --kills=50 --seed=0 --root=/tmp/kill_anywhere

Each kill is a named crash point (`twm_tf.faults`, e.g. in the middle of writing the replay file)
at a random pass, or a SIGKILL after a random delay (which lands anywhere, inside compiled steps
too). After every kill the same `launch.train` command resumes the run; once it finishes, its
final state must equal that of an uninterrupted run with the same seed: every checkpointed tensor
(weights, optimizer slots, counters, generators, env and RNG states), the replay file, and
episodes.csv, evals.csv and eval.json. launch/kill_anywhere_test.py runs a fixed list of 11 kills.
"""

import filecmp
import os
import signal
import subprocess
import sys

import numpy as np
from absl import app
from absl import flags

from twm_tf import faults
from twm_tf.replay import file_format as replay_file
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import run_dir as run_dir_lib

# A run that passes every crash point within a few seconds of compute.
TRAIN_FLAGS = (
    "--preset=debug",
    "--config.env_steps=200",
    "--config.prefill_steps=80",
    "--config.max_episode_steps=60",
    "--config.checkpoint_every=20",
    "--config.eval_every=40",
    "--config.eval_episodes_interim=1",
    "--eval_episodes=1",
)
_COMPARED_FILES = (run_dir_lib.EPISODES, run_dir_lib.EVALS, run_dir_lib.EVAL)


def train(run_dir: str, kill_at: str | None = None, kill_after: float | None = None) -> int:
    """Runs launch.train on run_dir until it ends or is killed; returns its exit code.

    Args:
      kill_at: `<crash point>:<pass>` for TWM_TF_KILL_AT.
      kill_after: seconds after which the process gets SIGKILL.

    Returns:
      0 when the run finished, -SIGKILL when it was killed.

    Raises:
      RuntimeError: with the output's tail, when the run failed otherwise.
    """
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    env.pop(faults.ENV_VAR, None)
    if kill_at:
        env[faults.ENV_VAR] = kill_at
    command = [sys.executable, "-m", "launch.train", f"--run_dir={run_dir}", *TRAIN_FLAGS]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate()
    if process.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"train exited with {process.returncode}:\n{output[-3000:]}")
    return process.returncode


def final_state(run_dir: str) -> dict:
    """Every checkpointed tensor but the save counter, the replay file's contents, and paths."""
    import tensorflow as tf  # Only here: the parent process of the runs needs no TensorFlow.

    directory = run_dir_lib.path(run_dir, run_dir_lib.CHECKPOINTS)
    checkpoint = tf.train.latest_checkpoint(directory)
    reader = tf.train.load_checkpoint(checkpoint)
    tensors = {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if not key.startswith("save_counter") and key != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }
    header, arrays = replay_file.read(checkpoint_lib.replay_path(checkpoint))
    return {"tensors": tensors, "replay_header": header, "replay": arrays, "run_dir": run_dir}


def differences(resumed: dict, straight: dict) -> list[str]:
    """What differs between two final states (empty when the runs are equal)."""
    found = []
    a, b = resumed["tensors"], straight["tensors"]
    found += [f"checkpoint key only on one side: {k}" for k in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        if not np.array_equal(a[key], b[key]):
            found.append(f"checkpoint tensor {key} differs")
    if resumed["replay_header"] != straight["replay_header"]:
        found.append("replay header (size, sampling RNG) differs")
    for name, array in straight["replay"].items():
        if not np.array_equal(resumed["replay"][name], array):
            found.append(f"replay array {name} differs")
    for name in _COMPARED_FILES:
        paths = [run_dir_lib.path(s["run_dir"], name) for s in (resumed, straight)]
        if not filecmp.cmp(*paths, shallow=False):
            found.append(f"{name} differs")
    return found


def kill_and_resume(run_dir: str, kills: list[dict]) -> list[int]:
    """Applies each kill (train() keyword arguments) in turn, then resumes until the run ends.

    Returns:
      The exit code of each killed attempt, in order (-SIGKILL unless the run ended before).
    """
    codes = [train(run_dir, **kill) for kill in kills]
    while train(run_dir) != 0:
        pass
    return codes


_KILLS = flags.DEFINE_integer("kills", 50, "Kills in total, over as many runs as they need.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill schedule.")
_ROOT = flags.DEFINE_string("root", "/tmp/kill_anywhere", "Directory of the run directories.")


def _random_kill(rng: np.random.Generator) -> dict:
    if rng.random() < 0.5:
        point = faults.POINTS[rng.integers(len(faults.POINTS))]
        return {"kill_at": f"{point}:{rng.integers(1, 10)}"}
    return {"kill_after": float(rng.uniform(3.0, 40.0))}


def main(argv):
    del argv
    if os.path.exists(_ROOT.value):
        raise SystemExit(f"kill_anywhere: {_ROOT.value} exists; pick a new --root")
    rng = np.random.default_rng(_SEED.value)
    straight = os.path.join(_ROOT.value, "straight")
    train(straight)
    reference = final_state(straight)
    total, failed_runs, run = 0, 0, 0
    # A run killed until it finishes on its own; then the next, until --kills kills happened.
    while total < _KILLS.value:
        run_dir = os.path.join(_ROOT.value, f"killed-{run}")
        kills = []
        while (kill := _random_kill(rng)) and train(run_dir, **kill) != 0:
            kills.append(kill)
        found = differences(final_state(run_dir), reference)
        total, run, failed_runs = total + len(kills), run + 1, failed_runs + bool(found)
        print(f"{run_dir}: {len(kills)} kills {kills}; {len(found)} differences", flush=True)
        for line in found:
            print("  " + line)
    print(f"{total} kills over {run} runs; {failed_runs} runs differ from the uninterrupted one")
    if failed_runs:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)

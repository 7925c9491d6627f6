"""Speed benchmarks at the paper's shapes (random weights and data; no learning involved).

    python -m launch.benchmark                      # all three, paper config
    python -m launch.benchmark --only=imagination --config.horizon=15

Reports (median over --repeats after a warm-up call):
  world_model   one world-model update on N x (l + 1) windows (target <= 10 s on 2 CPU cores)
  imagination   M x H imagination + critic and actor update (target <= 2.7 s), and the marginal
                cost per imagined step at several horizons (flat = the cache works)
  policy        one encoder + actor step at batch 1, in process and from the exported
                SavedModel (target < 1 ms)
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from twm_tf import config as config_lib
from twm_tf import export
from twm_tf import imagination
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic
from twm_tf.models import observation

_ONLY = flags.DEFINE_multi_enum(
    "only",
    ["world_model", "imagination", "policy"],
    ["world_model", "imagination", "policy"],
    "Benchmarks to run.",
)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per benchmark.")
_NUM_ACTIONS = flags.DEFINE_integer("num_actions", 18, "Action count (18 = full Atari set).")
config_lib.define_flags()


def _median_seconds(fn, repeats: int) -> float:
    fn()  # Trace and warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _window(config, rng) -> world_model_lib.Batch:
    n, length, size = config.wm_batch, config.seq_len + 2, config.frame_size
    return world_model_lib.Batch(
        frames=tf.constant(
            rng.integers(0, 256, [n, length, config.frame_stack, size, size]), tf.uint8
        ),
        actions=tf.constant(rng.integers(0, _NUM_ACTIONS.value, [n, length]), tf.int32),
        rewards=tf.constant(rng.standard_normal([n, length]), tf.float32),
        terminated=tf.constant(rng.random([n, length]) < 0.01),
        dones=tf.constant(rng.random([n, length]) < 0.01),
    )


def bench_world_model(config, wm, rng) -> dict:
    step = tf.function(wm.train_step, jit_compile=config.jit_compile)
    batch, seed = _window(config, rng), tf.constant([0, 1], tf.int64)
    return {"world_model_update_s": _median_seconds(lambda: step(batch, seed), _REPEATS.value)}


def bench_imagination(config, wm, ac, rng) -> dict:
    size = config.frame_size
    latents = world_model_lib.Latents(
        z=observation.latent_mode(
            tf.random.normal(
                [config.wm_batch, config.seq_len + 2, config.latent_vars, config.latent_classes]
            )
        ),
        actions=tf.constant(
            rng.integers(0, _NUM_ACTIONS.value, [config.wm_batch, config.seq_len + 2]), tf.int32
        ),
        rewards=tf.zeros([config.wm_batch, config.seq_len + 2]),
        dones=tf.zeros([config.wm_batch, config.seq_len + 2], tf.bool),
    )
    restart_obs = tf.constant(
        rng.integers(0, 256, [config.imag_starts, config.frame_stack, size, size]), tf.uint8
    )

    def make(horizon: int, update: bool):
        cfg = config.replace(horizon=horizon)

        # No autograph: the graph has no Python control flow on tensors, and autograph's
        # source cache confuses the closures of these per-horizon functions.
        @tf.function(jit_compile=config.jit_compile, autograph=False)
        def run(seed):
            seeds = tf.random.experimental.stateless_split(seed, num=3)
            starts = imagination.select_starts(latents, cfg.imag_starts, seeds[0])
            restart_z = observation.sample_latent(wm.observation.encode(restart_obs), seeds[1])
            trajectory = imagination.rollout(
                wm.dynamics, ac.actor, starts, restart_z, seeds[2], cfg
            )
            return ac.update(*trajectory) if update else trajectory.rewards

        return lambda: run(tf.constant([0, 1], tf.int64))

    result = {
        "imagination_and_update_s": _median_seconds(make(config.horizon, True), _REPEATS.value)
    }
    horizons = sorted(
        {1, max(2, config.horizon // 3), max(3, 2 * config.horizon // 3), config.horizon}
    )
    totals = [_median_seconds(make(h, False), _REPEATS.value) for h in horizons]
    result["rollout_s_by_horizon"] = dict(zip(map(str, horizons), totals))
    result["marginal_step_ms"] = {
        f"{a}->{b}": 1e3 * (tb - ta) / (b - a)
        for (a, ta), (b, tb) in zip(zip(horizons, totals), zip(horizons[1:], totals[1:]))
    }
    return result


def bench_policy(config) -> dict:
    """Encoder + actor at batch 1 (random float32 weights), in process and from a SavedModel."""
    size = config.frame_size
    with export.precision_policy("float32"):
        obs_model = observation.ObservationModel(config)
        actor = actor_critic.Actor(config, _NUM_ACTIONS.value)
    frames = tf.constant(
        np.random.default_rng(0).integers(0, 256, [1, config.frame_stack, size, size]), tf.uint8
    )

    @tf.function
    def act(frames, seed):
        return actor_critic.sample_actions(
            actor(observation.latent_mode(obs_model.encode(frames))), seed
        )

    seed = tf.constant([0, 1], tf.int64)
    results = {"policy_step_in_process_ms": 1e3 * _median_seconds(lambda: act(frames, seed), 200)}
    meanings = [f"A{i}" for i in range(_NUM_ACTIONS.value)]
    with tempfile.TemporaryDirectory() as directory:
        path = export.export_policy(f"{directory}/policy", obs_model, actor, config, meanings)
        # A fresh process on one intra-op thread, as launch/play.py runs the SavedModel.
        script = (
            "import json, sys, tensorflow as tf\n"
            "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
            "from twm_tf import export\n"
            "print(json.dumps(export.measure_latency(sys.argv[1], iterations=1000)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, path], capture_output=True, text=True, check=True
        )
        results["policy_step_saved_model_ms"] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def main(argv):
    del argv
    tf.get_logger().setLevel("WARNING")
    config = config_lib.from_flags()
    keras.mixed_precision.set_global_policy(config.precision)
    rng = np.random.default_rng(0)
    wm = world_model_lib.WorldModel(config, _NUM_ACTIONS.value)
    wm.build()
    ac = actor_critic.ActorCritic(config, _NUM_ACTIONS.value)
    results = {
        "config": flags.FLAGS.preset,
        "precision": config.precision,
        "jit_compile": config.jit_compile,
    }
    if "world_model" in _ONLY.value:
        results.update(bench_world_model(config, wm, rng))
    if "imagination" in _ONLY.value:
        results.update(bench_imagination(config, wm, ac, rng))
    if "policy" in _ONLY.value:
        results.update(bench_policy(config))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)

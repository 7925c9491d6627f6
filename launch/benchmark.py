"""Speed benchmarks at the paper's shapes (random weights and data; no learning involved).

    python -m launch.benchmark                      # every section, paper config
    python -m launch.benchmark --only=train_step --preset=small
    TF_ENABLE_ONEDNN_OPTS=0 python -m launch.benchmark --only=world_model   # oneDNN off

Reports (median over --repeats after a warm-up call), with the CPU model, TensorFlow version,
oneDNN and XLA state:
  world_model   one world-model update on N windows of l + 2 steps, its FLOPs (twm_tf.dev.flops) and
                achieved FLOP/s next to this machine's float32 matmul FLOP/s
  imagination   M x H imagination + critic and actor update, and the marginal cost per imagined
                step at several horizons (flat = the cache works)
  policy        one encoder + actor step at batch 1: in process, the exported SavedModel, and its
                LiteRT model (policy.tflite) on 1 and 2 threads
  train_step    one train step as the trainer runs it (replay sampling, host-to-device, world-model
                update, imagination, actor-critic) on a buffer of prefill_steps random steps;
                env steps per second with the policy acting; retracing after warm-up (must be 0)
  evaluation    --eval_games evaluation games with the (random-weight) policy, batched
  dream         twm_tf.envs.dream.DreamEnv at batch 1: one imagined step (dynamics step with
                attention, latent sample, decoder), the policy's action and the rgb_array render;
                steps per second against the game's pace (60 / frame_skip = 15)
Peak RSS is the process's: run --only=train_step alone for the memory of training.

--profile_dir=DIR profiles one more call of each section after its timed ones, into DIR/<section>
(world_model, imagination, policy, train_step), for TensorBoard's profile plugin or xprof: the
trace viewer shows each op's time, the memory profile the tensors alive at the memory peak. It
switches TensorFlow to its BFC CPU allocator, whose statistics the memory profile needs, so
timings and peak RSS of such a run are not comparable with others.
"""

import datetime
import json
import os
import platform
import resource
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

import launch
from twm_tf import acting
from twm_tf import config_flags
from twm_tf import distribute
from twm_tf import imagination
from twm_tf import precision
from twm_tf import trainer as trainer_lib
from twm_tf import world_model as world_model_lib
from twm_tf.deploy import export
from twm_tf.dev import flops
from twm_tf.envs import atari
from twm_tf.envs import dream
from twm_tf.evaluation import protocol as evaluation
from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import observation
from twm_tf.run import restore

_SECTIONS = ["world_model", "imagination", "policy", "train_step", "evaluation", "dream"]
_ONLY = flags.DEFINE_multi_enum("only", _SECTIONS, _SECTIONS, "Benchmarks to run.")
_EVAL_GAMES = flags.DEFINE_integer("eval_games", 100, "Games of the evaluation benchmark.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per benchmark.")
_NUM_ACTIONS = flags.DEFINE_integer("num_actions", 18, "Action count (18 = full Atari set).")
_PROFILE_DIR = flags.DEFINE_string(
    "profile_dir", None, "Also profile one call per section into DIR/<section> (see above)."
)
config_flags.define_flags()


def _median_seconds(fn, repeats: int, profile: str | None = None) -> float:
    """Median time of fn after a warm-up call; then, with --profile_dir, one profiled call."""
    fn()  # Trace and warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    if profile and _PROFILE_DIR.value:
        tf.profiler.experimental.start(os.path.join(_PROFILE_DIR.value, profile))
        try:
            fn()
        finally:
            tf.profiler.experimental.stop()
    return statistics.median(times)


def _window(config, rng) -> world_model_lib.Batch:
    n, length, size = config.wm_batch, world_model_lib.window_length(config), config.frame_size
    return world_model_lib.Batch(
        frames=tf.constant(
            rng.integers(0, 256, [n, length, config.frame_stack, size, size]), tf.uint8
        ),
        actions=tf.constant(rng.integers(0, _NUM_ACTIONS.value, [n, length]), tf.int32),
        rewards=tf.constant(rng.standard_normal([n, length]), tf.float32),
        terminated=tf.constant(rng.random([n, length]) < 0.01),
        dones=tf.constant(rng.random([n, length]) < 0.01),
    )


def _machine() -> dict:
    cpu = platform.processor()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 (no public API)

    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
        "onednn": bool(_pywrap_util_port.IsMklEnabled()),
    }


def _matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matmul throughput (all threads), the roofline for the updates."""
    a = tf.random.normal([size, size])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    seconds = _median_seconds(lambda: matmul(a).numpy(), repeats)
    return 2 * size**3 / seconds


def bench_world_model(config, wm, rng) -> dict:
    step = tf.function(wm.train_step, jit_compile=config.jit_compile)
    batch, seed = _window(config, rng), tf.constant([0, 1], tf.int64)
    seconds = _median_seconds(lambda: step(batch, seed), _REPEATS.value, "world_model")
    signature = world_model_lib.batch_signature(
        config, config.wm_batch, world_model_lib.window_length(config)
    )
    update_flops = flops.count(
        tf.function(wm.train_step).get_concrete_function(signature, tf.TensorSpec([2], tf.int64))
    )
    peak = _matmul_flops_per_second()
    return {
        "world_model_update_s": seconds,
        "world_model_update_gflop": update_flops / 1e9,
        "world_model_gflop_per_s": update_flops / seconds / 1e9,
        "matmul_gflop_per_s": peak / 1e9,
        "world_model_fraction_of_matmul": update_flops / seconds / peak,
    }


def bench_imagination(config, wm, ac, rng) -> dict:
    size = config.frame_size
    latents = world_model_lib.Latents(
        z=distributions.latent_mode(
            tf.random.normal(
                [
                    config.wm_batch,
                    world_model_lib.window_length(config),
                    config.latent_vars,
                    config.latent_classes,
                ]
            )
        ),
        actions=tf.constant(
            rng.integers(
                0, _NUM_ACTIONS.value, [config.wm_batch, world_model_lib.window_length(config)]
            ),
            tf.int32,
        ),
        rewards=tf.zeros([config.wm_batch, world_model_lib.window_length(config)]),
        dones=tf.zeros([config.wm_batch, world_model_lib.window_length(config)], tf.bool),
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
            seeds = tf.random.experimental.stateless_split(seed, num=2)
            starts = imagination.select_starts(latents, cfg.imag_starts, seeds[0])
            args = (starts, restart_obs, wm.observation.encode, seeds[1], cfg)
            if not update:
                return imagination.rollout(wm.dynamics, ac.actor, *args).rewards
            # As the learner runs it: the actor's update reuses the rollout's passes.
            _, gradients, metrics = imagination.rollout_and_gradients(wm.dynamics, ac, *args)
            return {**metrics, **ac.apply(gradients)}

        return lambda: run(tf.constant([0, 1], tf.int64))

    result = {
        "imagination_and_update_s": _median_seconds(
            make(config.horizon, True), _REPEATS.value, "imagination"
        )
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
    """Encoder + actor at batch 1 (random float32 weights): in process, SavedModel and LiteRT."""
    size = config.frame_size
    with precision.policy("float32"):
        obs_model = observation.ObservationModel.from_twm_config(config)
        actor = actor_critic.Actor.from_twm_config(config, _NUM_ACTIONS.value)
    frames = tf.constant(
        np.random.default_rng(0).integers(0, 256, [1, config.frame_stack, size, size]), tf.uint8
    )

    act = acting.policy_function(obs_model, actor)  # as the trainer acts
    seed = tf.constant([0, 1], tf.int64)
    results = {
        "policy_step_in_process_ms": 1e3 * _median_seconds(lambda: act(frames, seed), 200, "policy")
    }
    meanings = [f"A{i}" for i in range(_NUM_ACTIONS.value)]
    with tempfile.TemporaryDirectory() as directory:
        path = export.export_policy(f"{directory}/policy", obs_model, actor, config, meanings)
        # A fresh process on one intra-op thread, as launch/play.py runs the SavedModel.
        script = (
            "import json, sys, tensorflow as tf\n"
            "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
            "from twm_tf.deploy import export\n"
            "print(json.dumps(export.measure_latency(sys.argv[1], iterations=1000)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, path], capture_output=True, text=True, check=True
        )
        results["policy_step_saved_model_ms"] = json.loads(out.stdout.strip().splitlines()[-1])
        for threads in (1, 2):  # LiteRT keeps its own threads: in process is as a player runs it.
            results[f"policy_step_litert_{threads}_threads_ms"] = export.measure_latency(
                path, iterations=1000, runtime="litert", num_threads=threads
            )
    return results


def bench_train_step(config) -> dict:
    """The trainer's own train step and acting loop on a buffer of random prefill steps."""
    # Room for the prefill, the acting steps and more (a debug config's budget is smaller).
    config = config.replace(env_steps=max(config.env_steps, config.prefill_steps + 2_000))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = trainer_lib.Trainer(config, run_dir)
        trainer.writer = tf.summary.create_noop_writer()  # Episode summaries go nowhere.
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(config.prefill_steps):
            trainer._env_step(int(rng.integers(trainer.num_actions)))  # noqa: SLF001
        random_rate = config.prefill_steps / (time.perf_counter() - start)
        learner = trainer.learner
        seconds = _median_seconds(
            lambda: learner.train(trainer.replay), _REPEATS.value, "train_step"
        )
        traces = learner.tracing_count()

        def act():
            trainer._env_step(learner.act(trainer.loop.obs))  # noqa: SLF001

        act()
        start, steps = time.perf_counter(), 1_000
        for _ in range(steps):
            act()
        policy_rate = steps / (time.perf_counter() - start)
        learner.train(trainer.replay)  # After acting: new replay contents, same shapes.
        retraces = learner.tracing_count() - traces
        return {
            "train_step_s": seconds,
            "env_steps_per_s_random": random_rate,
            "env_steps_per_s_policy": policy_rate,
            "train_step_retraces_after_warmup": retraces,
        }


def bench_evaluation(config) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = trainer_lib.Trainer(config, run_dir)
        logits = trainer.learner.policy_logits
        logits(trainer.loop.obs[None])
        start = time.perf_counter()
        result = evaluation.evaluate(logits, config, _EVAL_GAMES.value, seed=0)
        seconds = time.perf_counter() - start
    return {
        "evaluation_games": _EVAL_GAMES.value,
        "evaluation_s": seconds,
        "evaluation_env_steps_per_s": sum(result.lengths) / seconds,
    }


def bench_dream(config) -> dict:
    """A DreamEnv over random float32 models of config.game, started from a real game."""
    game = atari.from_config(config, training=False, seed=0)
    meanings = game.action_meanings
    game.close()
    with precision.policy("float32"):
        wm = world_model_lib.WorldModel(config, len(meanings))
        wm.build()
        actor = actor_critic.Actor.from_twm_config(config, len(meanings))
        actor(tf.zeros([1, config.latent_vars, config.latent_classes]))
    run = restore.RunModels(config, wm, wm.observation, actor, meanings, checkpoint="")
    # Enough steps for the timed ones below under any preset's time limit (debug's is 200).
    env = dream.DreamEnv(run=run, render_mode="rgb_array", max_steps=400)
    env.reset(seed=0)
    step = _median_seconds(lambda: env.step(env.agent_action()), 200, "dream")
    render = _median_seconds(env.render, 50)
    # CPU time of the process (all threads) per step: on a shared machine, near what an idle
    # one would take.
    start, steps = time.process_time(), 100
    for _ in range(steps):
        env.step(env.agent_action())
        env.render()
    cpu = (time.process_time() - start) / steps
    env.close()
    return {
        "dream_step_ms": 1e3 * step,
        "dream_render_ms": 1e3 * render,
        "dream_steps_per_s": 1.0 / (step + render),
        "dream_step_and_render_cpu_ms": 1e3 * cpu,
        "dream_game_pace_steps_per_s": 60 / config.frame_skip,
        "load_average_1min": os.getloadavg()[0],
    }


def main(argv):
    del argv
    launch.quiet_library_logs()
    if _PROFILE_DIR.value:
        # Read when TensorFlow creates its CPU allocator, at the first op (not run yet).
        os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    config = config_flags.from_flags()
    distribute.strategy(config.replicas)  # Splits the CPU for --config.replicas before TF starts.
    keras.mixed_precision.set_global_policy(config.precision)
    rng = np.random.default_rng(0)
    wm = world_model_lib.WorldModel(config, _NUM_ACTIONS.value)
    wm.build()
    ac = actor_critic.ActorCritic(config, _NUM_ACTIONS.value)
    results = {
        **_machine(),
        "config": flags.FLAGS.preset,
        "precision": config.precision,
        "jit_compile": config.jit_compile,
        "profile_dir": _PROFILE_DIR.value,
    }
    if "world_model" in _ONLY.value:
        results.update(bench_world_model(config, wm, rng))
    if "imagination" in _ONLY.value:
        results.update(bench_imagination(config, wm, ac, rng))
    if "policy" in _ONLY.value:
        results.update(bench_policy(config))
    if "train_step" in _ONLY.value:
        results.update(bench_train_step(config))
    if "evaluation" in _ONLY.value:
        results.update(bench_evaluation(config))
    if "dream" in _ONLY.value:
        results.update(bench_dream(config))
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)

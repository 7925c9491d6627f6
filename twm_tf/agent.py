"""The TWM agent: the three-phase training loop, checkpoints, summaries and evaluation.

    prefill      config.prefill_steps uniformly random env steps
    pretrain     on the prefill data: VAE on single frames, dynamics on uniform windows, then
                 critic on real encoded sequences with an entropy-only actor (SPEC "Schedule")
    main loop    per env step (policy acts on z = mode of the encoder of the last 4 frames), add
                 1 / env_steps_per_train_step train credits; each whole credit is one train step:
                 a world-model update on N x (l + 2) balanced windows, then imagination of M x H
                 steps and one critic + actor update

Every counter, generator and env lives in the checkpoint (the replay buffer in a file beside it),
so running the same command again resumes exactly where the last checkpoint left off.
"""

import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
import tqdm

from twm_tf import checkpoint as checkpoint_lib
from twm_tf import config as config_lib
from twm_tf import evaluation
from twm_tf import files
from twm_tf import imagination
from twm_tf import metrics as metrics_lib
from twm_tf import progress as progress_lib
from twm_tf import replay as replay_lib
from twm_tf import run_lock
from twm_tf import seeding
from twm_tf import world_model as world_model_lib
from twm_tf.envs import atari
from twm_tf.models import actor_critic
from twm_tf.models import observation


# Fields a resumed run may change: they do not touch the training state.
_RESUMABLE_CHANGES = frozenset(
    {"eval_every", "eval_episodes", "eval_episodes_interim", "log_every", "checkpoint_every"}
)


_PRETRAIN_SAVE_SECONDS = 600.0


def _say(message: str) -> None:
    """The project's own console messages: above the progress bars, never hidden by --verbosity."""
    tqdm.tqdm.write(message, file=sys.stderr)


class _StopRequest:
    """Turns SIGINT / SIGTERM into a request to stop at the next step boundary.

    `waiting_for()` says what the stop waits for (the step in flight and the save).
    """

    def __init__(self, waiting_for: Callable[[], str]):
        self.requested = False
        self._waiting_for = waiting_for
        self._previous = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():  # Signals need the main thread.
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del frame
        if self.requested:
            raise KeyboardInterrupt  # Second request: abort now, keep the last checkpoint.
        self.requested = True
        _say(
            f"{signal.Signals(signum).name}: stopping; {self._waiting_for()}. Press Ctrl-C "
            "again (or send SIGTERM) to abort at once: the run then resumes from its last "
            "checkpoint."
        )

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class RunDirError(ValueError):
    """The run directory holds a run that this config cannot resume."""


class TrainingDiverged(RuntimeError):
    """Updates kept being non-finite; the run stopped before its last checkpoint was touched."""


class Schedule(NamedTuple):
    """Update counts implied by the config (all in updates, not samples)."""

    pretrain_obs: int
    pretrain_dyn: int
    pretrain_ac: int
    main_train_steps: int


def schedule(config: config_lib.Config) -> Schedule:
    """The number of updates of each phase; pretraining budgets are in batch elements."""
    samples = config.pretrain_samples
    main_env_steps = config.env_steps - config.prefill_steps
    return Schedule(
        pretrain_obs=round(samples * config.pretrain_obs_fraction / config.pretrain_obs_batch),
        pretrain_dyn=round(
            samples * config.pretrain_dyn_fraction / (config.wm_batch * config.seq_len)
        ),
        pretrain_ac=round(
            samples * config.pretrain_ac_fraction / (config.imag_starts * config.horizon)
        ),
        main_train_steps=int(main_env_steps / config.env_steps_per_train_step + 1e-9),
    )


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)


class _LoopState(tf.train.experimental.PythonState):
    """The Python side of the loop (env, NumPy RNG, current observation) inside the checkpoint.

    It also records how the run's random streams were derived from its seed (`seeding.describe`):
    a checkpoint whose streams another derivation made cannot continue bit-exactly and is refused.
    """

    def __init__(self, agent: "Agent"):
        self._agent = agent

    def serialize(self) -> bytes:
        agent = self._agent
        buffer = io.BytesIO()
        np.savez(
            buffer,
            env=np.frombuffer(agent.env.get_state().to_bytes(), np.uint8),
            rng=_json_bytes(agent.rng.bit_generator.state),
            seeds=_json_bytes(seeding.describe(agent.config.seed)),
            obs=agent.obs,
            scalars=np.array([agent.first, agent.episode_return, agent.train_credit], np.float64),
        )
        return buffer.getvalue()

    def deserialize(self, data: bytes) -> None:
        agent = self._agent
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            expected = seeding.describe(agent.config.seed)
            saved = json.loads(arrays["seeds"].tobytes()) if "seeds" in arrays else None
            if saved != expected:
                raise RunDirError(
                    f"{agent.run_dir}: the checkpoint's random streams were derived as {saved}, "
                    f"this version derives {expected}; resume it with the version that wrote it "
                    "or pick a new --run_dir"
                )
            agent.env.set_state(atari.EnvState.from_bytes(arrays["env"].tobytes()))
            agent.rng.bit_generator.state = json.loads(arrays["rng"].tobytes())
            agent.obs = arrays["obs"]
            first, agent.episode_return, agent.train_credit = arrays["scalars"].tolist()
            agent.first = bool(first)


class Agent:
    """Trains one TWM agent in `run_dir`; `train()` runs or resumes the whole schedule."""

    def __init__(self, config: config_lib.Config, run_dir: str):
        self.config = config
        self.run_dir = run_dir
        self.schedule = schedule(config)
        self.env = atari.from_config(config, training=True, seed=seeding.derive(config.seed, "env"))
        self.num_actions = self.env.num_actions
        self.replay = replay_lib.ReplayBuffer(
            capacity=config.env_steps,
            frame_size=config.frame_size,
            stack=config.frame_stack,
            tau=config.replay_tau,
            seed=seeding.derive(config.seed, "replay"),
        )
        # Initial weights and dropout seeds come from Keras' global generator: seed it so that
        # equal configs give equal runs (also across Agents in one process).
        keras.utils.set_random_seed(seeding.derive(config.seed, "weights"))
        keras.mixed_precision.set_global_policy(config.precision)
        self.world_model = world_model_lib.WorldModel(config, self.num_actions)
        self.world_model.build()
        self.actor_critic = actor_critic.ActorCritic(config, self.num_actions)
        self.generator = tf.random.Generator.from_seed(seeding.derive(config.seed, "tf"))
        self.rng = seeding.numpy_rng(config.seed, "prefill")
        self.obs = self.env.reset()
        self.first = True
        self.episode_return = 0.0
        self.train_credit = 0.0
        self.last_return = float("nan")
        self._means = metrics_lib.Means()
        self._log_mark = (time.monotonic(), 0)
        self._last_save = time.monotonic()
        self._postfix = {}
        self._postfix_time = 0.0
        self._skipped_in_a_row = 0
        self._activity = "step"
        self.counters = {
            name: tf.Variable(0, dtype=tf.int64, name=name)
            for name in ("env_steps", "episodes", "pretrain_updates", "train_steps")
        }
        self.checkpoint = checkpoint_lib.training_checkpoint(
            self.world_model,
            self.actor_critic,
            generator=self.generator,
            counters=self.counters,
            loop=_LoopState(self),
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=2
        )
        self.writer = None  # Created by train() once run_dir is known to be this run's.
        self._compile()

    # ----------------------------------------------------------------- compiled steps

    def _compile(self) -> None:
        config, wm, ac = self.config, self.world_model, self.actor_critic
        jit = config.jit_compile
        size, stack = config.frame_size, config.frame_stack
        seed_spec = tf.TensorSpec([2], tf.int64)
        window = world_model_lib.batch_signature(
            config, config.wm_batch, world_model_lib.window_length(config)
        )
        obs_spec = tf.TensorSpec([config.imag_starts, stack, size, size], tf.uint8)

        @tf.function(input_signature=[window, obs_spec, seed_spec], jit_compile=jit)
        def train_step(batch, restart_obs, seed):
            seeds = tf.random.experimental.stateless_split(seed, num=4)
            metrics, latents = wm.train_step(batch, seeds[0])
            starts = imagination.select_starts(latents, config.imag_starts, seeds[1])
            restart_z = observation.sample_latent(wm.observation.encode(restart_obs), seeds[2])
            trajectory = imagination.rollout(
                wm.dynamics, ac.actor, starts, restart_z, seeds[3], config
            )
            metrics.update(ac.update(**trajectory._asdict()))
            metrics["imagination/reward_mean"] = tf.reduce_mean(trajectory.rewards)
            metrics["imagination/discount_mean"] = tf.reduce_mean(trajectory.discounts)
            metrics["imagination/restarts"] = tf.reduce_mean(tf.cast(trajectory.dones, tf.float32))
            return metrics

        pretrain_obs_spec = tf.TensorSpec([config.pretrain_obs_batch, stack, size, size], tf.uint8)

        @tf.function(input_signature=[pretrain_obs_spec, seed_spec], jit_compile=jit)
        def pretrain_obs(frames, seed):
            return wm.observation_step(frames, seed)

        @tf.function(input_signature=[window, seed_spec], jit_compile=jit)
        def pretrain_dyn(batch, seed):
            return wm.dynamics_step(batch, seed)

        ac_window = world_model_lib.batch_signature(config, config.imag_starts, config.horizon + 1)

        @tf.function(input_signature=[ac_window, seed_spec], jit_compile=jit)
        def pretrain_ac(batch, seed):
            logits = wm.observation.encode(batch.frames)
            z = observation.sample_latent(logits, seed)
            discounts = config.gamma * (1.0 - tf.cast(batch.terminated, tf.float32))
            return ac.update(
                z,
                None,
                tf.tanh(batch.rewards[:, :-1]),
                discounts[:, :-1],
                batch.dones[:, :-1],
                entropy_only=True,
            )

        self._policy = evaluation.policy_function(wm.observation, ac.actor)
        self._policy_logits = evaluation.policy_logits(wm.observation, ac.actor)
        self._train_step = train_step
        self._pretrain_obs = pretrain_obs
        self._pretrain_dyn = pretrain_dyn
        self._pretrain_ac = pretrain_ac

    def _seed(self) -> tf.Tensor:
        return self.generator.make_seeds(1)[:, 0]

    @staticmethod
    def _window(batch: replay_lib.Batch) -> world_model_lib.Batch:
        return world_model_lib.Batch(*batch[: len(world_model_lib.Batch._fields)])

    # ----------------------------------------------------------------- the loop

    def train(self, until: int | None = None) -> dict | None:
        """Runs (or resumes) the schedule up to env step `until` (default: the whole budget).

        Checkpoints are written only between steps: every config.checkpoint_every env steps,
        at `until`, and after Ctrl-C / SIGTERM, which stop at the next step boundary (a second
        Ctrl-C aborts at once). An exception inside a step writes nothing, so the last
        checkpoint stays consistent and resuming from it is exact.

        Returns:
          The final evaluation's summary (also in <run_dir>/eval.json) once the budget is
          spent; None when stopped earlier.

        Raises:
          run_lock.RunDirLocked: another live process is training in run_dir.
          RunDirError: run_dir holds a run of another config or seed derivation.
          TrainingDiverged: updates kept being non-finite.
        """
        self._check_run_dir()  # Before the lock: a refused directory gets no lock file either.
        with run_lock.hold(self.run_dir):
            self._check_run_dir()
            self.writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "tensorboard"))
            return self._run(until)

    def _run(self, until: int | None) -> dict | None:
        config = self.config
        target = config.env_steps if until is None else min(until, config.env_steps)
        config.save(self.run_dir)
        self._restore()
        steps = self.counters["env_steps"]
        eval_path = os.path.join(self.run_dir, "eval.json")
        if int(steps) >= config.env_steps and os.path.exists(eval_path):
            with open(eval_path) as f:
                return json.load(f)  # A finished run: nothing left to do.
        self.progress = progress_lib.Progress(self._phases(), done=self._phases_done())
        with _StopRequest(self._waiting_for) as self._stop:
            self._activity = "prefill step"
            with self._bar("prefill", "step") as bar:
                while int(steps) < min(target, config.prefill_steps) and not self._stop.requested:
                    self._env_step(int(self.rng.integers(self.num_actions)))
                    self._tick(bar, "prefill")
                    self._maybe_checkpoint()
            if int(steps) >= config.prefill_steps:
                self._pretrain_phase()
                self._maybe_evaluate()  # The paper's first evaluation follows pretraining.
            self._activity = "train step (world-model update, imagination, actor-critic)"
            with self._bar("train", "step") as bar:
                while int(steps) < target and not self._stop.requested:
                    self._main_step(bar)
        self.save()
        if int(steps) < config.env_steps:
            return None
        return self.evaluate_final()

    # ----------------------------------------------------------------- progress

    def _pretrain_parts(self) -> list[tuple[str, int, Callable[[], dict]]]:
        """Pretraining's parts in order: (progress phase, updates, one update)."""
        sched = self.schedule
        return [
            ("pretrain VAE", sched.pretrain_obs, self._pretrain_vae),
            ("pretrain dynamics", sched.pretrain_dyn, self._pretrain_dynamics),
            ("pretrain actor-critic", sched.pretrain_ac, self._pretrain_actor_critic),
        ]

    def _phases(self) -> list[tuple[str, int]]:
        config = self.config
        return [
            ("prefill", config.prefill_steps),
            *((phase, count) for phase, count, _ in self._pretrain_parts()),
            ("train", config.env_steps - config.prefill_steps),
            ("final evaluation", config.eval_episodes),
        ]

    def _phases_done(self) -> dict[str, int]:
        """Units of each phase that the restored counters say are done."""
        config = self.config
        steps, updates = int(self.counters["env_steps"]), int(self.counters["pretrain_updates"])
        done = {"prefill": min(steps, config.prefill_steps)}
        offset = 0
        for phase, count, _ in self._pretrain_parts():
            done[phase] = min(max(updates - offset, 0), count)
            offset += count
        done["train"] = max(steps - config.prefill_steps, 0)
        return done

    def _bar(self, phase: str, unit: str) -> tqdm.tqdm:
        """A live progress line for one phase: its count, rate and ETA; the overall ETA after."""
        return tqdm.tqdm(
            desc=phase,
            total=self.progress.totals[phase],
            initial=self.progress.done[phase],
            unit=unit,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=self.progress.remaining(phase) == 0,
        )

    def _tick(self, bar: tqdm.tqdm, phase: str, **postfix) -> None:
        """One unit of `phase` done: counts, and about once a second the bar's postfix."""
        self.progress.advance(phase)
        now = time.monotonic()
        if postfix or now - self._postfix_time > 1.0:
            self._postfix_time = now
            self._postfix.update(postfix)
            bar.set_postfix(run=self.progress.summary(), **self._postfix, refresh=False)
        bar.update(1)

    def _waiting_for(self) -> str:
        """What a stop request waits for, for the message that acknowledges it."""
        models = (
            self.world_model.observation,
            self.world_model.dynamics,
            self.actor_critic.actor,
            self.actor_critic.critic,
        )
        # Weights and Adam's two slots per weight.
        weights = 3 * sum(
            math.prod(v.shape) * tf.as_dtype(v.dtype).size for m in models for v in m.variables
        )
        megabytes = (self.replay.nbytes + weights) / 1e6
        return (
            f"finishing the {self._activity} in flight, then saving the checkpoint "
            f"(~{megabytes:,.0f} MB with the replay buffer)"
        )

    def _check_run_dir(self) -> None:
        """Refuses to resume a run of another config (its checkpoint would not fit)."""
        path = os.path.join(self.run_dir, "config.json")
        if not os.path.exists(path):
            os.makedirs(self.run_dir, exist_ok=True)
            return
        saved = dataclasses.asdict(config_lib.load(path))
        given = dataclasses.asdict(self.config)
        changed = [
            f"{name}: {saved[name]!r} -> {given[name]!r}"
            for name in saved
            if saved[name] != given[name] and name not in _RESUMABLE_CHANGES
        ]
        if changed:
            raise RunDirError(
                f"{self.run_dir} holds a run with another config ({'; '.join(changed)}); "
                "resume it with its own flags or pick a new --run_dir"
            )

    def _main_step(self, bar: tqdm.tqdm) -> None:
        """One env step with the policy and the train steps its credit pays for."""
        config = self.config
        action = self._policy(self.obs[None], self._seed())[0]
        self._env_step(int(action))
        self.train_credit += 1.0 / config.env_steps_per_train_step
        while self.train_credit >= 1.0 - 1e-9:
            self._means.add(self._guard(self._train()))
            self.train_credit -= 1.0
            self.counters["train_steps"].assign_add(1)
        self._log(bar)
        self._maybe_evaluate()
        self._maybe_checkpoint()

    def _env_step(self, action: int) -> None:
        step = self.env.step(action)
        self.replay.add(
            obs_or_frame=self.obs,
            action=action,
            reward=step.reward,
            terminated=step.terminated,
            truncated=step.truncated,
            is_first=self.first,
        )
        self.episode_return += float(step.reward)
        self.obs, self.first = step.obs, bool(step.is_first)
        env_steps = int(self.counters["env_steps"].assign_add(1))
        if step.new_game:
            self._end_episode(env_steps)

    def _end_episode(self, env_steps: int) -> None:
        episode = int(self.counters["episodes"].assign_add(1))
        with open(os.path.join(self.run_dir, "episodes.csv"), "a", newline="") as f:
            csv.writer(f).writerow([env_steps, episode, self.episode_return])
        with self.writer.as_default(step=env_steps):
            tf.summary.scalar("env/episode_return", self.episode_return)
        self.last_return = self.episode_return
        self.episode_return = 0.0

    def _train(self) -> dict:
        config = self.config
        batch = self.replay.sample(config.wm_batch, world_model_lib.replay_steps(config))
        restart_obs = self.replay.sample_observations(config.imag_starts)
        return self._train_step(self._window(batch), restart_obs, self._seed())

    def _guard(self, metrics: dict) -> dict:
        """Counts consecutive steps with a skipped update; raises TrainingDiverged after too many.

        An exception inside a step writes no checkpoint, so the last one (from before the
        trouble, unless it began more than a checkpoint interval ago) stays as it was.
        """
        skipped = sorted(
            name.split("/")[0]
            for name, value in metrics.items()
            if name.endswith("/skipped") and float(value) > 0
        )
        self._skipped_in_a_row = self._skipped_in_a_row + 1 if skipped else 0
        if self._skipped_in_a_row >= self.config.max_skipped_updates:
            raise TrainingDiverged(
                f"{self._skipped_in_a_row} train steps in a row had a non-finite loss or "
                f"gradient ({', '.join(skipped)}); stopped at env step "
                f"{int(self.counters['env_steps'])}. The last checkpoint "
                f"({self.manager.latest_checkpoint}) is untouched; TensorBoard's */skipped "
                "shows when updates began to fail (config.max_skipped_updates sets the limit)"
            )
        return metrics

    def _pretrain_vae(self) -> dict:
        frames = self.replay.sample_observations(self.config.pretrain_obs_batch)
        return self._pretrain_obs(frames, self._seed())

    def _pretrain_dynamics(self) -> dict:
        steps = world_model_lib.replay_steps(self.config)
        batch = self.replay.sample_uniform(self.config.wm_batch, steps)
        return self._pretrain_dyn(self._window(batch), self._seed())

    def _pretrain_actor_critic(self) -> dict:
        batch = self.replay.sample_uniform(self.config.imag_starts, self.config.horizon)
        return self._pretrain_ac(self._window(batch), self._seed())

    def _pretrain_phase(self) -> None:
        """Pretraining on the prefill data; resumable at update granularity."""
        done = self.counters["pretrain_updates"]
        offset = 0
        for phase, count, update in self._pretrain_parts():
            self._activity = f"{phase} update"
            with self._bar(phase, "update") as bar:
                while int(done) < offset + count and not self._stop.requested:
                    self._means.add(self._guard(update()))
                    done.assign_add(1)
                    self._tick(bar, phase)
                    if int(done) % 100 == 0 or int(done) == offset + count:
                        self._write_summaries(self._means.flush(), int(done), prefix="pretrain/")
                    # Pretraining takes hours at paper scale: checkpoint it every few minutes.
                    if time.monotonic() - self._last_save > _PRETRAIN_SAVE_SECONDS:
                        self.save()
            offset += count

    # ----------------------------------------------------------------- logging, checkpoints

    def _log(self, bar: tqdm.tqdm) -> None:
        """Every log_every env steps: the means of the metrics since the last write, rates."""
        env_steps = int(self.counters["env_steps"])
        if env_steps % self.config.log_every:
            self._tick(bar, "train")
            return
        now, train_steps = time.monotonic(), int(self.counters["train_steps"])
        last_time, last_train_steps = self._log_mark
        updates_per_second = (train_steps - last_train_steps) / max(now - last_time, 1e-9)
        self._log_mark = (now, train_steps)
        self._write_summaries(self._means.flush(), env_steps)
        with self.writer.as_default(step=env_steps):
            tf.summary.scalar("perf/env_steps_per_second", self.progress.rate("train") or 0.0)
            tf.summary.scalar("perf/updates_per_second", updates_per_second)
            tf.summary.scalar("replay/tau", self.config.replay_tau)
        self._tick(
            bar,
            "train",
            updates_per_s=f"{updates_per_second:.2f}",
            train_steps=train_steps,
            last_return=self.last_return,
        )

    def _write_summaries(self, metrics: dict, step: int, prefix: str = "") -> None:
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(prefix + name, value)

    def _maybe_checkpoint(self) -> None:
        if int(self.counters["env_steps"]) % self.config.checkpoint_every == 0:
            self.save()

    def save(self) -> str:
        """Writes the replay buffer, then the checkpoint that names it (crash-safe order)."""
        self._last_save = time.monotonic()
        number = self.checkpoint.save_counter.numpy() + 1
        replay_path = os.path.join(self.manager.directory, f"replay-{number}.bin")
        os.makedirs(self.manager.directory, exist_ok=True)
        self.replay.save(replay_path)
        path = self.manager.save(checkpoint_number=number)
        keep = {f"replay-{p.rsplit('-', 1)[1]}.bin" for p in self.manager.checkpoints}
        for name in os.listdir(self.manager.directory):
            if name.startswith("replay-") and name not in keep:
                os.remove(os.path.join(self.manager.directory, name))
        return path

    def _restore(self) -> None:
        path = self.manager.latest_checkpoint
        if path is None:
            return
        number = path.rsplit("-", 1)[1]
        self.replay.load(os.path.join(self.manager.directory, f"replay-{number}.bin"))
        self.checkpoint.restore(path).assert_existing_objects_matched()
        self._truncate_episode_log()
        _say(f"resumed {path} at env step {int(self.counters['env_steps'])}")

    def _truncate_episode_log(self) -> None:
        """Drops episodes logged after the checkpoint; the resumed run logs them again."""
        log_path = os.path.join(self.run_dir, "episodes.csv")
        if not os.path.exists(log_path):
            return
        with open(log_path, newline="") as f:
            rows = [row for row in csv.reader(f) if int(row[1]) <= int(self.counters["episodes"])]
        with files.atomic_write(log_path, newline="") as f:
            csv.writer(f).writerows(rows)

    # ----------------------------------------------------------------- evaluation

    def _maybe_evaluate(self) -> None:
        config = self.config
        env_steps = int(self.counters["env_steps"])
        if (
            config.eval_every
            and env_steps % config.eval_every == 0
            and env_steps < config.env_steps
        ):
            result = self.evaluate(config.eval_episodes_interim, seed_offset=env_steps)
            normalized = evaluation.human_normalized(config.game, result.mean)
            with self.writer.as_default(step=env_steps):
                tf.summary.scalar("eval/return_mean", result.mean)
                tf.summary.scalar("eval/human_normalized", normalized)
            self._log_evaluation(env_steps, result, normalized)

    def _log_evaluation(self, env_steps: int, result: evaluation.Result, normalized: float):
        """Appends to evals.csv (env_steps, mean, std, human_normalized, episodes).

        Rows at or after `env_steps` come from a run that was resumed from an earlier checkpoint
        and are replaced, so the file holds each evaluation once.
        """
        path = os.path.join(self.run_dir, "evals.csv")
        rows = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                rows = [row for row in csv.reader(f) if int(row[0]) < env_steps]
        rows.append([env_steps, result.mean, np.std(result.scores), normalized, len(result.scores)])
        with files.atomic_write(path, newline="") as f:
            csv.writer(f).writerows(rows)

    def evaluate(self, episodes: int, seed_offset: int = 0) -> evaluation.Result:
        """Plays `episodes` evaluation games with the current policy (own env and seeds)."""
        # Its own envs and seeds: evaluating never perturbs the training run's RNGs.
        seed = self.config.seed + seed_offset
        return evaluation.evaluate(self._policy_logits, self.config, episodes, seed=seed)

    def evaluate_final(self) -> dict:
        """The paper's final evaluation, written to <run_dir>/eval.json."""
        config = self.config
        with self._bar("final evaluation", "game") as bar:
            return evaluation.evaluate_final(
                self._policy_logits,
                config,
                config.eval_episodes,
                seed=config.seed + config.env_steps,
                path=os.path.join(self.run_dir, "eval.json"),
                on_game=lambda: self._tick(bar, "final evaluation"),
            )

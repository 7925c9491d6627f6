"""The TWM training loop: the three phases and when each thing happens.

    prefill      config.prefill_steps uniformly random env steps
    pretrain     on the prefill data: VAE on single frames, dynamics on uniform windows, then
                 critic on real encoded sequences with an entropy-only actor (docs/spec.md,
                 "Schedule")
    main loop    per env step (policy acts on z = mode of the encoder of the last 4 frames), add
                 1 / env_steps_per_train_step train credits; each whole credit is one train step:
                 a world-model update on N x (l + 2) balanced windows, then imagination of M x H
                 steps and one critic + actor update

What the loop drives lives elsewhere: the models and their compiled steps in twm_tf.learner, the
run directory's files in twm_tf.run.run_dir, the checkpoint and its replay file in
twm_tf.run.checkpoint.
Every counter, generator and env lives in the checkpoint, so running the same command again
resumes exactly where the last checkpoint left off.
"""

import json
import math
import os
import sys
import time
from collections.abc import Callable

import tensorflow as tf
import tqdm

from twm_tf import config as config_lib
from twm_tf import errors
from twm_tf import faults
from twm_tf import games
from twm_tf import learner as learner_lib
from twm_tf import schedule as schedule_lib
from twm_tf import seeding
from twm_tf.envs import atari
from twm_tf.evaluation import protocol as evaluation
from twm_tf.replay import buffer as replay_lib
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import loop_state
from twm_tf.run import metrics as metrics_lib
from twm_tf.run import progress as progress_lib
from twm_tf.run import run_dir as run_dir_lib
from twm_tf.run import run_lock
from twm_tf.run.stop_request import StopRequest
from twm_tf.run.stop_request import say

RunDirError = run_dir_lib.RunDirError

_PRETRAIN_SAVE_SECONDS = 600.0


class TrainingDiverged(errors.RunError, RuntimeError):
    """Updates kept being non-finite; the run stopped before its last checkpoint was touched."""


class Trainer:
    """Trains one TWM agent in `run_dir`; `train()` runs or resumes the whole schedule."""

    def __init__(self, config: config_lib.Config, run_dir: str):
        self.config = config
        self.run_dir = run_dir
        self.schedule = schedule_lib.schedule(config)
        env = atari.from_config(config, training=True, seed=seeding.derive(config.seed, "env"))
        self.num_actions = env.num_actions
        self.replay = replay_lib.ReplayBuffer(
            capacity=config.env_steps,
            frame_size=config.frame_size,
            stack=config.frame_stack,
            tau=config.replay_tau,
            seed=seeding.derive(config.seed, "replay"),
        )
        self.learner = learner_lib.Learner(config, self.num_actions)
        self.loop = loop_state.Loop(env, seeding.numpy_rng(config.seed, "prefill"), env.reset())
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
        checkpoint = checkpoint_lib.training_checkpoint(
            self.learner.models,
            self.learner.optimizers,
            generator=self.learner.generator,
            counters=self.counters,
            loop=loop_state.LoopState(self.loop, config.seed, run_dir),
        )
        self.saver = checkpoint_lib.Saver(
            checkpoint,
            self.replay,
            run_dir_lib.path(run_dir, run_dir_lib.CHECKPOINTS),
            self.learner.models,
        )
        self.writer = None  # Created by train() once run_dir is known to be this run's.

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
          checkpoint.NoUsableCheckpoint: every checkpoint in run_dir is damaged.
          checkpoint.SaveFailed: a checkpoint could not be written (the previous one is intact).
          TrainingDiverged: updates kept being non-finite.
        """
        # Checked before the lock too: a refused directory gets no lock file either.
        run_dir_lib.check_config(self.run_dir, self.config)
        with run_lock.hold(self.run_dir):
            run_dir_lib.check_config(self.run_dir, self.config)
            self.writer = tf.summary.create_file_writer(
                run_dir_lib.path(self.run_dir, run_dir_lib.TENSORBOARD)
            )
            return self._run(until)

    def _run(self, until: int | None) -> dict | None:
        config = self.config
        target = config.env_steps if until is None else min(until, config.env_steps)
        config.save(self.run_dir)
        self.restore()
        steps = self.counters["env_steps"]
        eval_path = run_dir_lib.path(self.run_dir, run_dir_lib.EVAL)
        if int(steps) >= config.env_steps and os.path.exists(eval_path):
            with open(eval_path) as f:
                return json.load(f)  # A finished run: nothing left to do.
        done = schedule_lib.phases_done(config, int(steps), int(self.counters["pretrain_updates"]))
        self.progress = progress_lib.Progress(schedule_lib.phases(config), done=done)
        with StopRequest(self._waiting_for) as self._stop:
            self._activity = "prefill step"
            with self._bar("prefill", "step") as bar:
                while int(steps) < min(target, config.prefill_steps) and not self._stop.requested:
                    self._env_step(int(self.loop.rng.integers(self.num_actions)))
                    faults.point("prefill_step")
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

    def _main_step(self, bar: tqdm.tqdm) -> None:
        """One env step with the policy and the train steps its credit pays for."""
        self._env_step(self.learner.act(self.loop.obs))
        self.loop.train_credit += 1.0 / self.config.env_steps_per_train_step
        while self.loop.train_credit >= 1.0 - 1e-9:
            faults.point("train_step")
            self._means.add(self._guard(self.learner.train(self.replay)))
            self.loop.train_credit -= 1.0
            self.counters["train_steps"].assign_add(1)
        self._log(bar)
        self._maybe_evaluate()
        self._maybe_checkpoint()

    def _env_step(self, action: int) -> None:
        step = self.loop.env.step(action)
        self.replay.add(
            obs_or_frame=self.loop.obs,
            action=action,
            reward=step.reward,
            terminated=step.terminated,
            truncated=step.truncated,
            is_first=self.loop.first,
        )
        self.loop.episode_return += float(step.reward)
        self.loop.obs, self.loop.first = step.obs, bool(step.is_first)
        env_steps = int(self.counters["env_steps"].assign_add(1))
        if step.new_game:
            self._end_episode(env_steps)

    def _end_episode(self, env_steps: int) -> None:
        episode = int(self.counters["episodes"].assign_add(1))
        run_dir_lib.append_episode(self.run_dir, env_steps, episode, self.loop.episode_return)
        with self.writer.as_default(step=env_steps):
            tf.summary.scalar("env/episode_return", self.loop.episode_return)
        self.last_return = self.loop.episode_return
        self.loop.episode_return = 0.0

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
                f"training diverged: {self._skipped_in_a_row} train steps in a row had a "
                f"non-finite loss or gradient ({', '.join(skipped)}); stopped at env step "
                f"{int(self.counters['env_steps'])}. The last checkpoint "
                f"({self.saver.latest}) is untouched; TensorBoard's */skipped "
                "shows when updates began to fail (config.max_skipped_updates sets the limit)"
            )
        return metrics

    def _pretrain_parts(self) -> list[tuple[str, int, Callable]]:
        """Pretraining's parts in order: (progress phase, updates, one update)."""
        learner = self.learner
        updates = (learner.pretrain_vae, learner.pretrain_dynamics, learner.pretrain_actor_critic)
        return list(zip(schedule_lib.PRETRAIN_PHASES, self.schedule.pretrain, updates))

    def _pretrain_phase(self) -> None:
        """Pretraining on the prefill data; resumable at update granularity."""
        done = self.counters["pretrain_updates"]
        offset = 0
        for phase, count, update in self._pretrain_parts():
            self._activity = f"{phase} update"
            with self._bar(phase, "update") as bar:
                while int(done) < offset + count and not self._stop.requested:
                    self._means.add(self._guard(update(self.replay)))
                    faults.point("pretrain_update")
                    done.assign_add(1)
                    self._tick(bar, phase)
                    if schedule_lib.every(int(done), 100) or int(done) == offset + count:
                        self._write_summaries(self._means.flush(), int(done), prefix="pretrain/")
                    # Pretraining takes hours at paper scale: checkpoint it every few minutes.
                    if time.monotonic() - self._last_save > _PRETRAIN_SAVE_SECONDS:
                        self.save()
            offset += count

    # ----------------------------------------------------------------- progress

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
        # Weights and Adam's two slots per weight.
        weights = 3 * sum(
            math.prod(v.shape) * tf.as_dtype(v.dtype).size
            for m in self.learner.models.values()
            for v in m.variables
        )
        megabytes = (self.replay.nbytes + weights) / 1e6
        return (
            f"finishing the {self._activity} in flight, then saving the checkpoint "
            f"(~{megabytes:,.0f} MB with the replay buffer)"
        )

    # ----------------------------------------------------------------- logging, checkpoints

    def _log(self, bar: tqdm.tqdm) -> None:
        """Every log_every env steps: the means of the metrics since the last write, rates."""
        env_steps = int(self.counters["env_steps"])
        if not schedule_lib.every(env_steps, self.config.log_every):
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
        if schedule_lib.every(int(self.counters["env_steps"]), self.config.checkpoint_every):
            self.save()

    def save(self) -> str:
        """Writes the replay buffer, then the checkpoint that names it (crash-safe order)."""
        self._last_save = time.monotonic()
        return self.saver.save()

    def restore(self) -> str | None:
        """Restores the newest usable checkpoint (none: a new run) and trims episodes.csv to it."""
        path = self.saver.restore()
        if path is not None:
            run_dir_lib.truncate_episodes(self.run_dir, int(self.counters["episodes"]))
            say(f"resumed {path} at env step {int(self.counters['env_steps'])}")
        return path

    # ----------------------------------------------------------------- evaluation

    def _maybe_evaluate(self) -> None:
        config = self.config
        env_steps = int(self.counters["env_steps"])
        if schedule_lib.every(env_steps, config.eval_every) and env_steps < config.env_steps:
            result = self.evaluate(config.eval_episodes_interim, seed_offset=env_steps)
            normalized = games.human_normalized(config.game, result.mean)
            with self.writer.as_default(step=env_steps):
                tf.summary.scalar("eval/return_mean", result.mean)
                tf.summary.scalar("eval/human_normalized", normalized)
            run_dir_lib.log_evaluation(self.run_dir, env_steps, result.scores, normalized)

    def evaluate(self, episodes: int, seed_offset: int = 0) -> evaluation.Result:
        """Plays `episodes` evaluation games with the current policy (own env and seeds)."""
        # Its own envs and seeds: evaluating never perturbs the training run's RNGs.
        seed = self.config.seed + seed_offset
        return evaluation.evaluate(self.learner.policy_logits, self.config, episodes, seed=seed)

    def evaluate_final(self) -> dict:
        """The paper's final evaluation, written to <run_dir>/eval.json."""
        config = self.config
        with self._bar("final evaluation", "game") as bar:
            return evaluation.evaluate_final(
                self.learner.policy_logits,
                config,
                config.eval_episodes,
                seed=config.seed + config.env_steps,
                path=run_dir_lib.path(self.run_dir, run_dir_lib.EVAL),
                on_game=lambda: self._tick(bar, "final evaluation"),
            )

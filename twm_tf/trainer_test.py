"""End-to-end tests of the trainer with the debug preset: outputs, schedule, bit-exact resume."""

import csv
import glob
import json
import os
import signal
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import schedule as schedule_lib
from twm_tf import seeding
from twm_tf import trainer as trainer_lib
from twm_tf.dev import testing
from twm_tf.evaluation import protocol as evaluation
from twm_tf.run import run_dir as run_dir_lib
from twm_tf.run import run_lock


def _config(**overrides):
    settings = dict(env_steps=200, prefill_steps=80, eval_episodes=1, max_episode_steps=60)
    settings.update(overrides)
    return config_lib.debug(**settings)


def _state(trainer: trainer_lib.Trainer) -> dict:
    """Everything a resumed run must reproduce: counters, replay, every weight."""
    wm, ac = trainer.learner.world_model, trainer.learner.actor_critic
    models = (wm.observation, wm.dynamics, ac.actor, ac.critic)
    optimizers = (wm.obs_optimizer, wm.dyn_optimizer, ac.actor_optimizer, ac.critic_optimizer)
    return {
        "counters": {k: int(v) for k, v in trainer.counters.items()},
        "replay_len": len(trainer.replay),
        "replay_frames": trainer.replay.observations(np.arange(len(trainer.replay))),
        "replay_visits": trainer.replay.visit_counts.copy(),
        "weights": [v.numpy() for m in models for v in m.variables],
        "optimizer": [v.numpy() for o in optimizers for v in o.variables],
        "generator": trainer.learner.generator.state.numpy(),
        "obs": trainer.loop.obs.copy(),
    }


class AgentTest(testing.TestCase):
    def test_schedule_counts(self):
        paper = schedule_lib.schedule(config_lib.atari100k())
        # docs/spec.md, "Schedule": 5e7 samples as 60/30/10 % over batch 1,600, 100 x 16, 400 x 15.
        self.assertEqual(paper, schedule_lib.Schedule(18_750, 9_375, 833, 125_000))
        config = _config(env_steps_per_train_step=2.5)
        self.assertEqual(schedule_lib.schedule(config).main_train_steps, 48)  # 120 / 2.5

    def test_end_to_end_run_and_outputs(self):
        config = _config(eval_every=40, eval_episodes_interim=1)
        run_dir = self.create_tempdir().full_path
        trainer = trainer_lib.Trainer(config, run_dir)
        train, logged = trainer.learner.train, []

        def recorded_train(replay):  # Every train step's metrics, with its env step.
            metrics = train(replay)
            logged.append((int(trainer.counters["env_steps"]), float(metrics["critic/loss"])))
            return metrics

        trainer.learner.train = recorded_train
        summary = trainer.train()
        sched = schedule_lib.schedule(config)

        self.assertLen(summary["scores"], config.eval_episodes)
        self.assertLen(summary["random_scores"], config.eval_episodes)
        self.assertEqual(summary["random_mean"], np.mean(summary["random_scores"]))
        self.assertTrue(np.isfinite(summary["mean"]) and np.isfinite(summary["human_normalized"]))
        with open(os.path.join(run_dir, "eval.json")) as f:
            self.assertEqual(json.load(f)["mean"], summary["mean"])
        # Evaluating the last checkpoint on its own (launch/evaluate.py) replays the same games.
        self.assertEqual(evaluation.evaluate_run(run_dir)["scores"], summary["scores"])
        self.assertNotEmpty(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")))
        self.assertNotEmpty(glob.glob(os.path.join(run_dir, "checkpoints", "replay-*.bin")))
        self.assertNotEmpty(glob.glob(os.path.join(run_dir, "tensorboard", "events.*")))
        self.assertEqual(config_lib.load(os.path.join(run_dir, "config.json")), config)
        with open(os.path.join(run_dir, "episodes.csv")) as f:
            episodes = list(csv.reader(f))
        self.assertNotEmpty(episodes)  # 60-step games: several finish within 200 steps
        # Interim evaluations after pretraining (env step 80) and every 40 steps, each once.
        evals_path = os.path.join(run_dir, "evals.csv")
        with open(evals_path) as f:
            self.assertEqual([int(row[0]) for row in csv.reader(f)], [80, 120, 160])
        run_dir_lib.log_evaluation(run_dir, 120, [1.0], 0.5)  # As after a resume.
        with open(evals_path) as f:
            rows = list(csv.reader(f))
        self.assertEqual([int(row[0]) for row in rows], [80, 120])
        self.assertEqual(float(rows[1][1]), 1.0)

        # Counts consistent with the schedule.
        restored = trainer_lib.Trainer(config, run_dir)
        restored.restore()
        counters = {k: int(v) for k, v in restored.counters.items()}
        self.assertEqual(counters["env_steps"], config.env_steps)
        self.assertEqual(counters["train_steps"], sched.main_train_steps)
        self.assertEqual(
            counters["pretrain_updates"],
            sched.pretrain_obs + sched.pretrain_dyn + sched.pretrain_ac,
        )
        self.assertEqual(counters["episodes"], len(episodes))
        self.assertLen(restored.replay, config.env_steps)

        # TensorBoard holds every loss term.
        tags, critic_loss = set(), {}
        for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags.update(value.tag for value in event.summary.value)
                for value in event.summary.value:
                    if value.tag == "critic/loss":
                        critic_loss[event.step] = float(tf.make_ndarray(value.tensor))
        # Each write is the mean over every train step since the previous write.
        self.assertNotEmpty(critic_loss)
        for step, value in critic_loss.items():
            interval = [v for s, v in logged if step - config.log_every < s <= step]
            self.assertGreater(len(interval), 1)
            self.assertAllClose(value, np.mean(interval), rtol=1e-6)
        for tag in (
            "obs/recon",
            "obs/entropy_loss",
            "obs/consistency",
            "dyn/latent",
            "dyn/reward",
            "dyn/discount",
            "actor/entropy",
            "critic/loss",
            "env/episode_return",
            "replay/tau",
            "pretrain/obs/recon",
        ):
            self.assertIn(tag, tags)

    def test_run_dir_of_another_config_is_refused(self):
        run_dir = self.create_tempdir().full_path
        _config(seq_len=3).save(run_dir)
        with self.assertRaisesRegex(ValueError, r"another config \(seq_len: 3 -> 4\)"):
            trainer_lib.Trainer(_config(), run_dir).train(until=0)

    def test_a_run_dir_in_training_is_refused(self):
        run_dir = self.create_tempdir().full_path
        with run_lock.hold(run_dir):  # As another live trainer would hold it.
            with self.assertRaisesRegex(run_lock.RunDirLocked, "being trained by another"):
                trainer_lib.Trainer(_config(), run_dir).train(until=0)
        self.assertFalse(os.path.exists(os.path.join(run_dir, "config.json")))

    def test_checkpoint_of_another_seed_derivation_is_refused(self):
        run_dir = self.create_tempdir().full_path
        trainer_lib.Trainer(_config(), run_dir).train(until=10)
        with mock.patch.object(seeding, "VERSION", seeding.VERSION + 1):
            with self.assertRaisesRegex(trainer_lib.RunDirError, "random streams were derived"):
                trainer_lib.Trainer(_config(), run_dir).train(until=20)

    def test_non_finite_updates_are_skipped_then_stop_the_run(self):
        trainer = trainer_lib.Trainer(
            _config(max_skipped_updates=3), self.create_tempdir().full_path
        )
        trainer.train(until=80)  # Prefill and pretraining, then a checkpoint.
        checkpoint = trainer.saver.latest
        weights = [v.numpy() for v in trainer.learner.world_model.dynamics.trainable_variables]
        sample = trainer.replay.sample

        def poisoned_sample(*args, **kwargs):  # Every batch from now on poisons every loss.
            batch = sample(*args, **kwargs)
            return batch._replace(rewards=np.full_like(batch.rewards, np.nan))

        trainer.replay.sample = poisoned_sample
        with self.assertRaisesRegex(trainer_lib.TrainingDiverged, "3 train steps in a row"):
            trainer.train(until=200)
        self.assertEqual(int(trainer.counters["train_steps"]), 2)  # The third one raised.
        for before, after in zip(weights, trainer.learner.world_model.dynamics.trainable_variables):
            np.testing.assert_array_equal(before, after)
        self.assertEqual(trainer.saver.latest, checkpoint)

    def test_exception_inside_a_step_writes_no_checkpoint(self):
        trainer = trainer_lib.Trainer(_config(), self.create_tempdir().full_path)
        step = trainer.loop.env.step

        def failing_step(action):
            if int(trainer.counters["env_steps"]) == 50:
                raise RuntimeError("emulator crashed")
            return step(action)

        trainer.loop.env.step = failing_step
        with self.assertRaisesRegex(RuntimeError, "emulator crashed"):
            trainer.train()
        # A checkpoint here would hold a half-done step; the last periodic one (none yet) stays.
        self.assertIsNone(trainer.saver.latest)

    def test_resume_is_bit_exact(self):
        config = _config()
        interrupted = self.create_tempdir().full_path
        trainer = trainer_lib.Trainer(config, interrupted)
        step = trainer.loop.env.step

        def interrupted_step(action):  # Ctrl-C arrives in the middle of env step 140.
            if int(trainer.counters["env_steps"]) == 139:
                signal.raise_signal(signal.SIGINT)
            return step(action)

        trainer.loop.env.step = interrupted_step
        self.assertIsNone(trainer.train())
        self.assertEqual(int(trainer.counters["env_steps"]), 140)
        resumed = trainer_lib.Trainer(config, interrupted)
        resumed.train(until=170)
        straight = trainer_lib.Trainer(config, self.create_tempdir().full_path)
        straight.train(until=170)

        a, b = _state(resumed), _state(straight)
        self.assertEqual(a["counters"], b["counters"])
        self.assertEqual(a["replay_len"], b["replay_len"])
        np.testing.assert_array_equal(a["replay_frames"], b["replay_frames"])
        np.testing.assert_array_equal(a["replay_visits"], b["replay_visits"])
        np.testing.assert_array_equal(a["generator"], b["generator"])
        np.testing.assert_array_equal(a["obs"], b["obs"])
        self.assertLen(a["weights"], len(b["weights"]))
        for x, y in zip(a["weights"] + a["optimizer"], b["weights"] + b["optimizer"]):
            np.testing.assert_array_equal(x, y)


if __name__ == "__main__":
    absltest.main()

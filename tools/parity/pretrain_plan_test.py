"""Tests of the pretraining comparison's plan: ranges, held-out windows, shares, returns, seeds."""

import numpy as np
from absl.testing import absltest

from tools.parity import plan as plan_lib
from tools.parity import pretrain_plan
from twm_tf import config as config_lib
from twm_tf import schedule
from twm_tf.dev import testdata
from twm_tf.dev import testing

_PREFILL = 600
_STEPS = _PREFILL + 700 + plan_lib.HELDOUT_STEPS  # some unused steps between the two ranges


def _recording(steps: int = _STEPS) -> testdata.Recording:
    """Random steps with episode ends; each frame holds its step index (mod 256) everywhere."""
    rng = np.random.default_rng(0)
    dones = rng.random(steps) < 0.01
    return testdata.Recording(
        frames=np.broadcast_to(
            (np.arange(steps) % 256).astype(np.uint8)[:, None, None], (steps, 2, 2)
        ),
        actions=rng.integers(0, 6, steps).astype(np.int32),
        rewards=rng.choice([-1.0, 0.0, 0.0, 2.0], steps).astype(np.float32),
        terminated=dones,
        truncated=np.zeros(steps, bool),
        is_first=np.concatenate([[True], dones[:-1]]),
    )


def _plan(**kwargs) -> pretrain_plan.PretrainPlan:
    config = config_lib.debug(pretrain_samples=25_600)  # 960 VAE, 480 dyn, 80 AC updates
    return pretrain_plan.PretrainPlan(_recording(), config, prefill=_PREFILL, **kwargs)


def _steps_used(plan: pretrain_plan.PretrainPlan) -> dict[str, np.ndarray]:
    """Every step whose data (or frames of its observation stack) each phase reads."""
    stack = testdata.stack_indices(plan.data.is_first)
    windows = {
        "obs": plan.obs_steps,
        "dyn": plan.dyn_starts[..., None] + np.arange(plan.wm_length),
        "ac": plan.ac_starts[..., None] + np.arange(plan.ac_length),
    }
    return {
        phase: np.union1d(index.ravel(), stack[index].ravel()) for phase, index in windows.items()
    }


class UpdateCountsTest(testing.TestCase):
    def test_default_share_is_twm_tfs_schedule(self):
        config = config_lib.small()
        counts = pretrain_plan.update_counts(config, pretrain_plan.DEFAULT_AC_SHARE)
        self.assertEqual(tuple(counts), schedule.schedule(config).pretrain)
        self.assertEqual(tuple(counts), (1172, 586, 52))

    def test_released_share_gives_seven_times_the_actor_critic_updates(self):
        config = config_lib.small()
        released = pretrain_plan.update_counts(config, pretrain_plan.RELEASED_AC_SHARE)
        default = pretrain_plan.update_counts(config, pretrain_plan.DEFAULT_AC_SHARE)
        self.assertEqual(released.ac, 365)  # round(0.7e6 / (128 x 15))
        self.assertEqual(released[:2], default[:2])

    def test_budget_scale(self):
        counts = pretrain_plan.update_counts(config_lib.small(), 0.7, budget_scale=0.02)
        self.assertEqual(tuple(counts), (23, 12, 7))


class PretrainPlanTest(testing.TestCase):
    def test_batches_lie_in_the_prefill(self):
        plan = _plan()
        self.assertEqual(tuple(plan.updates), (960, 480, 80))
        for phase, steps in _steps_used(plan).items():
            self.assertGreaterEqual(steps.min(), 0, phase)
            self.assertLess(steps.max(), _PREFILL, phase)

    def test_batches_have_the_planned_shapes_and_distinct_entries(self):
        plan = _plan()
        config = config_lib.debug()
        self.assertEqual(plan.obs_batch(3).shape, (config.pretrain_obs_batch, 4, 2, 2))
        windows = plan.dyn_windows(0)
        self.assertEqual(windows["frames"].shape, (config.wm_batch, config.seq_len + 2, 4, 2, 2))
        self.assertEqual(
            plan.ac_windows(0)["actions"].shape, (config.imag_starts, config.horizon + 1)
        )
        for draws in (plan.obs_steps, plan.dyn_starts, plan.ac_starts):
            self.assertTrue(all(len(set(row)) == len(row) for row in draws))
        # The newest frame of each window step is that step's frame.
        start = plan.dyn_starts[0, 0]
        np.testing.assert_array_equal(
            windows["frames"][0, :, -1, 0, 0], np.arange(start, start + plan.wm_length) % 256
        )
        np.testing.assert_array_equal(
            windows["actions"][0], plan.data.actions[start : start + plan.wm_length]
        )

    def test_heldout_windows_are_disjoint_from_the_batches(self):
        plan = _plan()
        first_heldout = _STEPS - plan_lib.HELDOUT_STEPS
        wm_heldout = plan.heldout_starts[:, None] + np.arange(plan.wm_length)
        ac_heldout = plan.heldout_ac_starts[:, None] + np.arange(plan.ac_length)
        stack = testdata.stack_indices(plan.data.is_first)
        for heldout in (wm_heldout, ac_heldout):
            self.assertGreaterEqual(stack[heldout].min(), first_heldout)
        used = np.concatenate(list(_steps_used(plan).values()))
        self.assertEmpty(np.intersect1d(used, np.union1d(wm_heldout, ac_heldout)))
        self.assertLessEqual(ac_heldout.max() + pretrain_plan.RETURN_TAIL, _STEPS)
        self.assertLen(plan.heldout_ac_starts, plan_lib.HELDOUT_WINDOWS)

    def test_heldout_windows_are_plan_pys(self):
        config = config_lib.debug()
        np.testing.assert_array_equal(
            _plan().heldout_starts, plan_lib.Plan(_recording(), config, 0, 0).heldout_starts
        )

    def test_share_changes_only_the_actor_critic_updates_and_extends_them(self):
        default = _plan(ac_share=0.1)
        released = _plan(ac_share=0.7)
        self.assertEqual(default.updates.ac, 80)  # 0.1 x 25,600 / (M = 8 x H = 4)
        self.assertEqual(released.updates.ac, 560)
        np.testing.assert_array_equal(default.obs_steps, released.obs_steps)
        np.testing.assert_array_equal(default.dyn_starts, released.dyn_starts)
        np.testing.assert_array_equal(default.ac_starts, released.ac_starts[:80])
        np.testing.assert_array_equal(default.heldout_ac_starts, released.heldout_ac_starts)

    def test_budget_scale_keeps_a_prefix_of_the_batches(self):
        full, short = _plan(), _plan(budget_scale=0.1)
        self.assertEqual(tuple(short.updates), (96, 48, 8))
        np.testing.assert_array_equal(short.obs_steps, full.obs_steps[:96])
        np.testing.assert_array_equal(short.dyn_starts, full.dyn_starts[:48])
        np.testing.assert_array_equal(short.ac_starts, full.ac_starts[:8])

    def test_deterministic_under_the_seed(self):
        first, again, other = _plan(), _plan(), _plan(seed=1)
        for name in ("obs_steps", "dyn_starts", "ac_starts", "heldout_ac_starts"):
            np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
            self.assertFalse(np.array_equal(getattr(first, name), getattr(other, name)), name)

    def test_eval_points_include_the_default_shares_end(self):
        released = _plan(ac_share=0.7)
        self.assertEqual(released.ac_eval_points(300), [0, 80, 300, 560])
        self.assertEqual(released.ac_eval_points(0), [0, 80, 560])
        self.assertEqual(_plan().ac_eval_points(0), [0, 80])

    def test_rejects_a_prefill_reaching_into_the_heldout_steps(self):
        with self.assertRaisesRegex(ValueError, "prefill"):
            pretrain_plan.PretrainPlan(
                _recording(), config_lib.debug(), prefill=_STEPS - plan_lib.HELDOUT_STEPS + 1
            )


class ReturnsTest(testing.TestCase):
    def test_discounted_returns_by_hand(self):
        rewards = np.array([1.0, 0.0, 2.0, 1.0])
        dones = np.array([False, True, False, False])
        # G_3 = 1, G_2 = 2 + 0.5 x 1, G_1 = 0 (its episode ends), G_0 = 1 + 0.5 x 0.
        np.testing.assert_allclose(
            pretrain_plan.discounted_returns(rewards, dones, 0.5), [1.0, 0.0, 2.5, 1.0]
        )

    def test_heldout_returns_sum_the_real_tanh_rewards(self):
        plan = _plan()
        data, gamma = plan.data, config_lib.debug().gamma
        for row, step in ((0, 0), (5, 3)):
            t = plan.heldout_ac_starts[row] + step
            total, discount = 0.0, 1.0
            while t < len(data.rewards):
                total += discount * np.tanh(data.rewards[t])
                if data.terminated[t] or data.truncated[t]:
                    break
                discount *= gamma
                t += 1
            np.testing.assert_allclose(plan.heldout_returns[row, step], total, rtol=1e-6)


class TermsTest(testing.TestCase):
    def test_original_critic_loss_loses_the_normal_constant(self):
        terms = pretrain_plan.ac_terms_from_original(
            {"critic_loss": 1.0, "ent": 1.5, "critic": 0.2}
        )
        self.assertAlmostEqual(terms["critic_loss"], 1.0 - 0.5 * np.log(2 * np.pi))
        self.assertEqual(terms["actor_entropy"], 1.5)
        self.assertEqual(terms["value_mean"], 0.2)

    def test_twm_tf_terms(self):
        metrics = {"critic/loss": 0.5, "actor/entropy": 1.2, "mc_abs_error": 0.1, "other": 3.0}
        self.assertEqual(
            pretrain_plan.ac_terms_from_twm_tf(metrics),
            {"critic_loss": 0.5, "actor_entropy": 1.2, "mc_abs_error": 0.1},
        )


if __name__ == "__main__":
    absltest.main()

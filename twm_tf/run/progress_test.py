"""Tests of the per-phase progress arithmetic with a fake clock."""

from absl.testing import absltest

from twm_tf.dev import testing
from twm_tf.run import progress as progress_lib


class FakeClock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class ProgressTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.clock = FakeClock()
        self.progress = progress_lib.Progress(
            [("prefill", 5_000), ("pretrain", 100), ("train", 95_000)], clock=self.clock
        )

    def test_phase_eta_from_its_own_rate(self):
        self.progress.begin("prefill")
        self.clock.now += 25.0
        self.progress.advance("prefill", 2_500)  # 100 steps/s
        self.assertEqual(self.progress.rate("prefill"), 100.0)
        self.assertEqual(self.progress.eta("prefill"), 25.0)
        self.assertIsNone(self.progress.eta("train"))

    def test_overall_sums_measured_phases_and_names_the_rest(self):
        progress = self.progress
        progress.begin("prefill")
        self.clock.now += 50.0
        progress.advance("prefill", 5_000)
        self.assertEqual(progress.overall(), (0.0, ["pretrain", "train"]))
        progress.begin("pretrain")
        self.clock.now += 40.0
        progress.advance("pretrain", 20)  # 0.5 updates/s: 160 s left
        self.assertEqual(progress.overall(), (160.0, ["train"]))
        self.assertEqual(progress.summary(), ">= 0:02:40 left + 1 untimed")
        progress.advance("pretrain", 80)
        progress.begin("train")
        self.clock.now += 100.0
        progress.advance("train", 500)  # 5 env steps/s: 94,500 left = 18,900 s
        self.assertEqual(progress.overall(), (18_900.0, []))
        self.assertEqual(progress.summary(), "5:15:00 left")

    def test_rates_wait_for_min_seconds_and_ignore_earlier_work(self):
        # A resumed run: 3,000 prefill steps were done by an earlier process.
        progress = progress_lib.Progress(
            [("prefill", 5_000)], clock=self.clock, done={"prefill": 3_000}
        )
        progress.begin("prefill")
        self.clock.now += 5.0
        progress.advance("prefill", 500)
        self.assertIsNone(progress.rate("prefill"))  # Too early: tracing, warm-up.
        self.clock.now += 15.0
        self.assertEqual(progress.rate("prefill"), 25.0)  # 500 in 20 s, not 3,500.
        self.assertEqual(progress.eta("prefill"), 60.0)

    def test_counts_clip_at_total_and_unknown_phase_is_an_error(self):
        self.progress.advance("pretrain", 150)
        self.assertEqual(self.progress.done["pretrain"], 100)
        self.assertEqual(self.progress.eta("pretrain"), 0.0)
        with self.assertRaisesRegex(ValueError, "unknown phase 'eval'"):
            self.progress.advance("eval")

    def test_format_seconds(self):
        self.assertEqual(progress_lib.format_seconds(59.6), "0:01:00")
        self.assertEqual(progress_lib.format_seconds(3_725), "1:02:05")
        self.assertEqual(progress_lib.format_seconds(2 * 86_400 + 61), "2d 0:01:01")


if __name__ == "__main__":
    absltest.main()

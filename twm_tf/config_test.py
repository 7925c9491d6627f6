"""Tests for the config dataclass, presets, validation and --config.<field> overrides."""

import math

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import config_flags
from twm_tf import files
from twm_tf import schedule as schedule_lib


def _parse(*argv: str) -> config_lib.Config:
    flag_values = flags.FlagValues()
    config_flags.define_flags(flag_values)
    flag_values(["prog", *argv])
    return config_flags.from_flags(flag_values)


class ConfigTest(parameterized.TestCase):
    def test_paper_defaults(self):
        config = config_lib.preset("atari100k")
        self.assertEqual((config.wm_batch, config.seq_len), (100, 16))
        self.assertEqual((config.imag_starts, config.horizon), (400, 15))
        self.assertEqual(config.latent_dim, 1024)
        self.assertEqual(
            (config.alpha1, config.alpha2, config.beta1, config.beta2), (5, 0.01, 10, 50)
        )
        self.assertEqual(config.replay_tau, 20.0)
        # 95k main-loop env steps at one train step per 0.76 env steps = 125k train steps.
        main_steps = config.env_steps - config.prefill_steps
        self.assertEqual(round(main_steps / config.env_steps_per_train_step), 125_000)

    def test_small_preset_keeps_the_protocol_and_algorithm(self):
        small, paper = config_lib.preset("small"), config_lib.preset("atari100k")
        # Same Atari 100k protocol and loss weights; only sizes and the update budget shrink.
        for name in (
            "env_steps prefill_steps noop_max max_episode_steps frame_skip latent_vars "
            "latent_classes seq_len memory_steps horizon alpha1 alpha2 beta1 beta2 "
            "gamma lam entropy_coef entropy_threshold actor_lr eval_episodes"
        ).split():
            self.assertEqual(getattr(small, name), getattr(paper, name), name)
        self.assertEqual(small.dyn_width // small.dyn_heads, paper.dyn_width // paper.dyn_heads)
        main_steps = small.env_steps - small.prefill_steps
        self.assertEqual(int(main_steps / small.env_steps_per_train_step), 3_958)
        # tau scales with the sampled windows, so visits / tau favours fresh data as in the paper.
        windows = 3_958 * small.wm_batch / (125_000 * paper.wm_batch)
        self.assertAlmostEqual(small.replay_tau, paper.replay_tau * windows, places=2)
        # Pretraining splits its updates 2:1 between the VAE and the dynamics model, as the paper.
        for config in (small, paper):
            plan = schedule_lib.schedule(config)
            self.assertAlmostEqual(plan.pretrain_obs / plan.pretrain_dyn, 2.0, delta=0.01)

    def test_frozen(self):
        config = config_lib.preset("debug")
        with self.assertRaises(AttributeError):
            config.seed = 3

    def test_overrides_from_command_line(self):
        config = _parse(
            "--preset=debug",
            "--config.seq_len=7",
            "--config.replay_tau=inf",
            "--config.encoder_channels=2,4,6,8",
            "--config.reward_input=false",
            "--config.game=Breakout",
        )
        self.assertEqual(config.seq_len, 7)
        self.assertTrue(math.isinf(config.replay_tau))
        self.assertEqual(config.encoder_channels, (2, 4, 6, 8))
        self.assertFalse(config.reward_input)
        self.assertEqual(config.game, "Breakout")
        # Untouched fields keep the preset's values.
        self.assertEqual(config.dyn_width, config_lib.debug().dyn_width)

    def test_unknown_flag_is_rejected(self):
        with self.assertRaisesRegex(flags.Error, "config.no_such_field"):
            _parse("--config.no_such_field=1")

    def test_wrong_type_names_flag(self):
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "config.seq_len"):
            _parse("--config.seq_len=abc")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "config.obs_lr"):
            _parse("--config.obs_lr=fast")
        # Tuples parse as Python literals; what is no tuple of ints fails validation, named.
        with self.assertRaisesRegex(
            ValueError, "config.encoder_channels must be a non-empty tuple"
        ):
            _parse("--config.encoder_channels=4,x")

    def test_tuple_accepts_python_literal(self):
        self.assertEqual(
            _parse("--config.encoder_channels=(2, 4, 6, 8)").encoder_channels, (2, 4, 6, 8)
        )

    def test_launcher_flag_and_config_flag_cannot_disagree(self):
        flag_values = flags.FlagValues()
        config_flags.define_flags(flag_values)
        flag_values(["prog", "--preset=debug", "--config.game=Boxing"])
        self.assertEqual(config_flags.from_flags(flag_values, game="Boxing").game, "Boxing")
        with self.assertRaisesRegex(ValueError, "--game='Pong' and --config.game='Boxing'"):
            config_flags.from_flags(flag_values, game="Pong")

    def test_unknown_preset(self):
        with self.assertRaisesRegex(ValueError, "--preset must be one of"):
            config_lib.preset("huge")

    def test_replace_rejects_unknown_field(self):
        with self.assertRaisesRegex(ValueError, "unknown config field"):
            config_lib.debug().replace(batchsize=3)

    @parameterized.parameters(
        ("seq_len", 0, "config.seq_len must be > 0"),
        ("wm_batch", -1, "config.wm_batch must be > 0"),
        ("replay_tau", 0.0, "config.replay_tau must be > 0"),
        ("replay_tau", -3.0, "config.replay_tau must be > 0"),
        ("entropy_threshold", 1.5, r"config.entropy_threshold must be in \[0, 1\]"),
        ("entropy_threshold", -0.1, r"config.entropy_threshold must be in \[0, 1\]"),
        ("gamma", 1.01, r"config.gamma must be in \[0, 1\]"),
        ("seq_len", 2.5, "config.seq_len must be an int"),
        ("reward_input", 1, "config.reward_input must be a bool"),
        ("encoder_channels", (4, 0, 8, 8), "config.encoder_channels must be a non-empty tuple"),
        ("dyn_heads", 3, "config.dyn_heads must be a divisor of dyn_width"),
        ("prefill_steps", 10**6, "config.prefill_steps must be <= env_steps"),
        ("obs_lr", float("nan"), "config.obs_lr must be finite"),
        ("imag_starts", 10**6, "config.imag_starts must be <= wm_batch"),
        ("frame_size", 84, "config.frame_size must be 64"),
        ("precision", "mixed_float16", "config.precision must be one of"),
        ("prefill_steps", 10, "config.prefill_steps must be >= 11"),
    )
    def test_validation_names_field(self, field, value, message):
        with self.assertRaisesRegex(ValueError, message):
            config_lib.debug(**{field: value})

    def test_save_load_round_trip(self):
        config = config_lib.debug(seed=5, replay_tau=float("inf"), encoder_channels=(2, 3, 4, 5))
        path = config.save(self.create_tempdir().full_path)
        self.assertEqual(config_lib.load(path), config)

    @parameterized.named_parameters(
        ("half_written", lambda text: text[: len(text) // 2], r"is not valid JSON \(\w.* line \d+"),
        ("empty", lambda text: "", "is empty"),
        ("not_an_object", lambda text: "[1, 2]", "holds a JSON list, not an object"),
        ("unknown_field", lambda text: '{"tau": 1}', r"unknown field\(s\) \['tau'\]"),
        ("wrong_type", lambda text: text.replace('"seed": 5', '"seed": "5"'), "seed must be"),
        ("binary", lambda text: "\udcff", "is not UTF-8 text"),
    )
    def test_load_names_the_file_and_the_problem(self, damage, message):
        path = config_lib.debug(seed=5).save(self.create_tempdir().full_path)
        with open(path) as f:
            text = damage(f.read())
        with open(path, "w", errors="surrogateescape") as f:
            f.write(text)
        with self.assertRaisesRegex(files.FileError, f"the run's config {path}.*{message}"):
            config_lib.load(path)

    def test_load_of_a_missing_or_directory_path_is_a_file_error(self):
        directory = self.create_tempdir().full_path
        for path in (directory + "/config.json", directory):
            with self.assertRaisesRegex(files.FileError, f"cannot read the run's config {path}"):
                config_lib.load(path)

    def test_save_writes_resolved_config(self):
        directory = self.create_tempdir().full_path
        path = config_lib.debug(seed=5).save(directory)
        with open(path) as f:
            self.assertIn('"seed": 5', f.read())


if __name__ == "__main__":
    absltest.main()

"""Every TWM hyperparameter in one frozen dataclass, its presets and its config.json.

Defaults are the paper's (Robine et al. 2023; numbers and sources in docs/spec.md); `validate`
checks types and ranges. The command line (`--preset`, `--config.<field>`) is config_flags.py.
"""

import dataclasses
import json
import math
import os
from typing import Any

from twm_tf import files
from twm_tf import games

FILE_NAME = "config.json"  # A run directory's resolved config (Config.save, load).

# mixed_float16 is left out: it needs loss scaling, which the train steps do not do.
PRECISIONS = ("float32", "mixed_bfloat16")

# Ranges of numeric fields, given next to each field's default (`_field(..., POSITIVE)`).
POSITIVE, NON_NEGATIVE, UNIT = "> 0", ">= 0", "in [0, 1]"
_IN_RANGE = {
    POSITIVE: lambda value: value > 0,
    NON_NEGATIVE: lambda value: value >= 0,
    UNIT: lambda value: 0.0 <= value <= 1.0,
}


def _field(default: Any, help_text: str, bounds: str | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"help": help_text, "bounds": bounds})


@dataclasses.dataclass(frozen=True)
class Config:
    """TWM hyperparameters; see each field's help (also `launch/train.py --helpfull`)."""

    # Environment (Atari 100k protocol).
    game: str = _field("Pong", "Atari game, one of the 26 Atari 100k games (envs/atari.py).")
    frame_size: int = _field(64, "Height and width of the grayscale frames.", POSITIVE)
    frame_stack: int = _field(4, "Frames per observation.", POSITIVE)
    frame_skip: int = _field(4, "Emulator frames per agent step (max over the last 2).", POSITIVE)
    noop_max: int = _field(
        30,
        "Training resets take 1..noop_max random no-op emulator frames (0 disables).",
        NON_NEGATIVE,
    )
    max_episode_steps: int = _field(27_000, "Time limit in agent steps (truncation).", POSITIVE)

    # Budget and schedule.
    env_steps: int = _field(100_000, "Agent steps per run, prefill included.", POSITIVE)
    prefill_steps: int = _field(5_000, "Initial uniformly random steps.", NON_NEGATIVE)
    env_steps_per_train_step: float = _field(
        0.76, "Env steps per train step in the main loop.", POSITIVE
    )
    pretrain_samples: float = _field(
        5e7, "Pretraining budget on prefill data, in batch elements.", NON_NEGATIVE
    )
    pretrain_obs_fraction: float = _field(0.6, "Share of pretrain_samples for the VAE.", UNIT)
    pretrain_dyn_fraction: float = _field(
        0.3, "Share of pretrain_samples for the dynamics model.", UNIT
    )
    pretrain_ac_fraction: float = _field(
        0.1, "Share of pretrain_samples for the actor-critic.", UNIT
    )
    pretrain_obs_batch: int = _field(1_600, "Single-frame batch of VAE pretraining.", POSITIVE)

    # Observation model (VAE).
    latent_vars: int = _field(32, "Categorical variables in z.", POSITIVE)
    latent_classes: int = _field(32, "Classes per categorical variable.", POSITIVE)
    encoder_channels: tuple[int, ...] = _field((48, 96, 192, 384), "Encoder conv channels.")
    encoder_hidden: tuple[int, ...] = _field((512, 512), "Encoder dense widths after flatten.")
    decoder_hidden: int = _field(768, "Decoder dense width before the transposed convs.", POSITIVE)
    decoder_channels: tuple[int, ...] = _field((192, 96, 48), "Decoder transposed-conv channels.")

    # Dynamics model (Transformer-XL).
    dyn_layers: int = _field(10, "Transformer-XL layers.", POSITIVE)
    dyn_width: int = _field(256, "Model width.", POSITIVE)
    dyn_heads: int = _field(4, "Attention heads (head size = dyn_width / dyn_heads).", POSITIVE)
    dyn_ffn: int = _field(1_024, "Feed-forward width.", POSITIVE)
    dyn_dropout: float = _field(
        0.1, "Dropout in attention, position encodings, ffn and heads.", UNIT
    )
    memory_steps: int = _field(16, "Past env steps kept in the recurrence memory.", POSITIVE)
    latent_head: tuple[int, ...] = _field((512,) * 4, "Hidden widths of the next-latent head.")
    scalar_head: tuple[int, ...] = _field((256,) * 4, "Hidden widths of reward/discount heads.")
    reward_input: bool = _field(True, "Feed reward tokens (False = 'no reward input' ablation).")

    # World-model training.
    wm_batch: int = _field(100, "N: sequences per world-model batch.", POSITIVE)
    seq_len: int = _field(
        16, "l: trained steps per sequence (plus a context step before).", POSITIVE
    )
    replay_tau: float = _field(20.0, "tau: replay sampling temperature (Eq. 11); inf = uniform.")
    alpha1: float = _field(
        5.0, "alpha1: weight of the VAE's thresholded latent-entropy regularizer.", NON_NEGATIVE
    )
    entropy_threshold_z: float = _field(0.1, "Gamma_z: normalized latent-entropy threshold.", UNIT)
    alpha2: float = _field(
        0.01, "alpha2: weight of the VAE's consistency cross-entropy with p(z_hat|h).", NON_NEGATIVE
    )
    beta1: float = _field(10.0, "beta1: weight of the dynamics model's reward NLL.", NON_NEGATIVE)
    beta2: float = _field(50.0, "beta2: weight of the dynamics model's discount NLL.", NON_NEGATIVE)
    obs_lr: float = _field(1e-4, "VAE Adam learning rate.", POSITIVE)
    dyn_lr: float = _field(1e-4, "Dynamics Adam learning rate.", POSITIVE)
    wm_clip: float = _field(
        100.0, "Global-norm gradient clip of both world-model optimizers.", POSITIVE
    )

    # Actor-critic and imagination.
    ac_hidden: tuple[int, ...] = _field((512,) * 4, "Hidden widths of actor and critic.")
    imag_starts: int = _field(400, "M: imagination starts per batch.", POSITIVE)
    horizon: int = _field(15, "H: imagined steps per rollout.", POSITIVE)
    restart_threshold: float = _field(
        0.1, "Restart rollouts whose discount product falls below.", UNIT
    )
    gamma: float = _field(0.99, "Discount factor.", UNIT)
    lam: float = _field(0.95, "lambda of the GAE advantages and the critic's lambda-returns.", UNIT)
    entropy_coef: float = _field(
        0.01, "eta: weight of the actor's thresholded policy-entropy loss.", NON_NEGATIVE
    )
    entropy_threshold: float = _field(0.1, "Gamma: normalized policy-entropy threshold.", UNIT)
    actor_lr: float = _field(1e-4, "Actor Adam learning rate.", POSITIVE)
    critic_lr: float = _field(1e-5, "Critic Adam learning rate.", POSITIVE)
    ac_clip: float = _field(1.0, "Global-norm gradient clip of actor and critic.", POSITIVE)

    # Shared optimizer settings.
    adam_eps: float = _field(
        1e-5, "Adam epsilon of every optimizer, added to the bias-corrected sqrt(v).", POSITIVE
    )
    weight_decay: float = _field(
        1e-6,
        "L2 weight decay of every optimizer, added to the clipped gradient before Adam (coupled, "
        "as torch.optim.Adam's).",
        NON_NEGATIVE,
    )
    max_skipped_updates: int = _field(
        10,
        "Consecutive train steps with a non-finite (skipped) update before the run stops.",
        POSITIVE,
    )

    # Evaluation, logging, runtime.
    eval_every: int = _field(
        5_000, "Env steps between intermediate evaluations (0 = none).", NON_NEGATIVE
    )
    eval_episodes_interim: int = _field(10, "Episodes per intermediate evaluation.", NON_NEGATIVE)
    eval_episodes: int = _field(100, "Episodes of the final evaluation.", POSITIVE)
    checkpoint_every: int = _field(5_000, "Env steps between checkpoints.", POSITIVE)
    log_every: int = _field(500, "Env steps between TensorBoard summaries.", POSITIVE)
    seed: int = _field(0, "Seed of every random number generator.")
    replicas: int = _field(
        1,
        "Devices of a data-parallel train step (tf.distribute.MirroredStrategy over GPUs, else "
        "logical CPUs); 1 = no strategy.",
        POSITIVE,
    )
    jit_compile: bool = _field(False, "XLA-compile the train steps (measure: oneDNN wins on CPU).")
    precision: str = _field(
        "float32",
        "Keras dtype policy: float32 or mixed_bfloat16 (CPUs with AMX/AVX512-BF16, Ampere+ "
        "GPUs, TPUs); variables, logits and losses stay float32.",
    )

    def __post_init__(self):
        validate(self)

    @property
    def latent_dim(self) -> int:
        return self.latent_vars * self.latent_classes

    def replace(self, **changes) -> "Config":
        """Returns a copy with `changes` applied; unknown names raise a ValueError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str)

    def save(self, directory: str) -> str:
        """Writes the resolved config to `directory`/config.json and returns the path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, FILE_NAME)
        with files.atomic_write(path) as f:
            f.write(self.to_json())
        return path


def load(path: str) -> Config:
    """Reads a config.json written by `Config.save` (a run directory's resolved config).

    Raises:
      files.FileError: naming `path` and what is wrong: missing, unreadable, empty, not JSON (a
        half-written file, a bad hand edit), an unknown field or a value of a wrong type or range.
    """
    what = "the run's config"
    values = files.read_json(path, what, fields={})
    kinds = {f.name: type(f.default) for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise files.FileError(f"{what} {path} has unknown field(s) {unknown}")
    for name, value in values.items():
        if kinds[name] is tuple and isinstance(value, list):
            values[name] = tuple(value)
        elif kinds[name] is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)  # JSON may hold an int, e.g. 20 for 20.0.
    try:
        return Config(**values)
    except ValueError as error:
        raise files.FileError(f"{what} {path}: {error}") from None


def _fail(field: str, expected: str, value: Any) -> None:
    raise ValueError(f"config.{field} must be {expected}, got {value!r}")


def validate(config: Config) -> None:
    """Checks types and ranges; raises ValueError naming the first bad field."""
    _check_types(config)
    _check_ranges(config)
    _check_relations(config)


def _check_types(config: Config) -> None:
    """Each field's type (and finiteness: only replay_tau may be inf)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind = type(f.default)
        if kind is bool:
            if not isinstance(value, bool):
                _fail(f.name, "a bool", value)
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                _fail(f.name, "an int", value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(f.name, "a number", value)
        elif kind is tuple:
            if not isinstance(value, tuple) or not value:
                _fail(f.name, "a non-empty tuple of positive ints", value)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                _fail(f.name, "a non-empty tuple of positive ints", value)
        elif kind is str and not isinstance(value, str):
            _fail(f.name, "a string", value)
        if kind in (int, float) and not isinstance(value, bool):
            if not math.isfinite(value) and f.name != "replay_tau":
                _fail(f.name, "finite", value)


def _check_ranges(config: Config) -> None:
    """Each field's bounds and allowed values, on its own."""
    for f in dataclasses.fields(config):
        bounds = f.metadata["bounds"]
        if bounds is not None and not _IN_RANGE[bounds](getattr(config, f.name)):
            _fail(f.name, bounds, getattr(config, f.name))
    if config.dyn_dropout >= 1.0:
        _fail("dyn_dropout", "< 1", config.dyn_dropout)
    if config.game not in games.GAMES:
        _fail("game", f"one of the 26 Atari 100k games ({', '.join(games.GAMES)})", config.game)
    if config.precision not in PRECISIONS:
        _fail("precision", f"one of {PRECISIONS}", config.precision)
    if not config.replay_tau > 0:
        _fail("replay_tau", "> 0 (inf for uniform sampling)", config.replay_tau)


def _check_relations(config: Config) -> None:
    """Fields against each other and against what the networks and the prefill are built for."""
    if config.dyn_width % config.dyn_heads:
        _fail("dyn_heads", f"a divisor of dyn_width={config.dyn_width}", config.dyn_heads)
    if config.prefill_steps > config.env_steps:
        _fail("prefill_steps", f"<= env_steps={config.env_steps}", config.prefill_steps)
    fractions = (
        config.pretrain_obs_fraction + config.pretrain_dyn_fraction + config.pretrain_ac_fraction
    )
    if fractions > 1.0 + 1e-9:
        _fail("pretrain_*_fraction", "shares summing to <= 1", round(fractions, 6))
    if config.frame_size != 64:
        _fail("frame_size", "64 (the conv stacks are built for 64x64 frames)", config.frame_size)
    if len(config.decoder_channels) != 3:
        _fail(
            "decoder_channels", "3 channel counts (the 4th is frame_stack)", config.decoder_channels
        )
    if len(config.encoder_channels) != 4:
        _fail("encoder_channels", "4 channel counts", config.encoder_channels)
    for name in ("wm_batch", "imag_starts"):
        if getattr(config, name) % config.replicas:
            _fail(name, f"a multiple of replicas={config.replicas}", getattr(config, name))
    if config.imag_starts > config.wm_batch * config.seq_len:
        _fail(
            "imag_starts",
            f"<= wm_batch * seq_len = {config.wm_batch * config.seq_len}",
            config.imag_starts,
        )
    # Prefill data must hold the first batches: N distinct windows, M distinct AC sequences.
    needed = max(config.wm_batch + config.seq_len, config.imag_starts + config.horizon - 1)
    if config.prefill_steps < needed:
        _fail(
            "prefill_steps",
            f">= {needed} (distinct windows for wm_batch x seq_len and imag_starts x horizon)",
            config.prefill_steps,
        )


def atari100k(**overrides) -> Config:
    """The paper's configuration."""
    return Config(**overrides)


def debug(**overrides) -> Config:
    """A tiny model and budget: the whole loop runs end to end in seconds on a CPU."""
    settings = dict(
        encoder_channels=(4, 8, 8, 16),
        encoder_hidden=(32,),
        decoder_hidden=32,
        decoder_channels=(16, 8, 4),
        latent_vars=4,
        latent_classes=4,
        dyn_layers=2,
        dyn_width=32,
        dyn_heads=2,
        dyn_ffn=64,
        memory_steps=4,
        latent_head=(32,),
        scalar_head=(32,),
        wm_batch=4,
        seq_len=4,
        ac_hidden=(32,),
        imag_starts=8,
        horizon=4,
        env_steps=300,
        prefill_steps=100,
        env_steps_per_train_step=4.0,
        pretrain_samples=2_000,
        pretrain_obs_batch=16,
        noop_max=5,
        max_episode_steps=200,
        eval_every=0,
        eval_episodes=2,
        checkpoint_every=100,
        log_every=50,
    )
    settings.update(overrides)
    return Config(**settings)


def small(**overrides) -> Config:
    """The paper's algorithm at a size one CPU core trains in about two hours per game.

    Same code path and Atari 100k protocol (100k env steps, 5k random prefill); the deviations
    from the paper are all about compute (docs/results/small/tuning.md measures each):
    networks ~1/4 the width and half the depth, N = 32 windows, M = 128 imagination starts,
    1 train step per 24 env steps (3,958 instead of 125,000), pretraining on 1e6 samples
    (instead of 5e7). With ~30x fewer updates the learning rates of the VAE, the dynamics model
    and the critic are raised (3e-4, 3e-4, 1e-4), and VAE pretraining takes batches of N x l
    frames as the paper's, so that it gets twice the dynamics model's updates (1,172 against
    586) as in the paper: with 375 updates of 1,600 frames at 1e-4 the VAE did not yet draw the
    objects the player controls. The replay temperature is tau = 0.2 instead of 20: the visit
    counts grow with the number of sampled windows (~100x fewer here), and v / tau keeps the
    paper's preference for fresh data. Interim evaluations play 20 games.
    """
    settings = dict(
        encoder_channels=(16, 32, 64, 128),
        encoder_hidden=(256,),
        decoder_hidden=256,
        decoder_channels=(64, 32, 16),
        dyn_layers=4,
        dyn_width=128,
        dyn_heads=2,
        dyn_ffn=512,
        latent_head=(256, 256),
        scalar_head=(128, 128),
        wm_batch=32,
        ac_hidden=(256, 256),
        imag_starts=128,
        env_steps_per_train_step=24.0,
        pretrain_samples=1e6,
        pretrain_obs_batch=512,
        obs_lr=3e-4,
        dyn_lr=3e-4,
        critic_lr=1e-4,
        replay_tau=0.2,
        eval_every=10_000,
        eval_episodes_interim=20,
    )
    settings.update(overrides)
    return Config(**settings)


PRESETS = {"atari100k": atari100k, "debug": debug, "small": small}


def preset(name: str, **overrides) -> Config:
    """Returns preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name](**overrides)

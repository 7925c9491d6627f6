"""Open-loop prediction quality of a world model on real transitions, next to trivial baselines.

From a start step s the dynamics model holds the real steps s - C .. s - 1 in memory (C =
memory_steps) and reads the real z_s and a_s; every later step feeds the model's own latent and
reward but the real action:

    memory (real):  z_{s-C} a_{s-C} r_{s-C} ... z_{s-1} a_{s-1} r_{s-1}
    k = 1:          z_s     a_s                     h_s     -> z^_{s+1}, r^_s,     g^_s
    k = 2:          r^_s    z^_{s+1} a_{s+1}        h_{s+1} -> z^_{s+2}, r^_{s+1}, g^_{s+1}
    k = 3:          r^_{s+1} z^_{s+2} a_{s+2}       ...        (a_* always the real actions)

Horizon k scores z^_{s+k} (and its decoded frames) against the real o_{s+k}, and r^_{s+k-1},
g^_{s+k-1} against transition s + k - 1. A prediction whose target lies past an episode end is
left out.

Each error that has a trivial baseline also gets `<error>_gain_ci`: the 95 % CI of the
baseline's error minus the model's, averaged over the starts (above 0: the model is better). It
is a circular moving-block bootstrap over consecutive starts, in blocks of _BLOCK starts,
because neighbouring starts score overlapping steps.
"""

import json
import math
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from twm_tf import acting
from twm_tf import config as config_lib
from twm_tf import files
from twm_tf import world_model as world_model_lib
from twm_tf.dev import testdata
from twm_tf.envs import atari
from twm_tf.evaluation import protocol as evaluation
from twm_tf.models import distributions
from twm_tf.models import observation
from twm_tf.run import restore

_CHUNK = 64  # Starts per batched rollout and frames per encoder/decoder call.
_BLOCK = 100  # Starts per bootstrap block: neighbouring starts' errors are correlated.
_RESAMPLES = 2000


class Transitions(NamedTuple):
    """T consecutive real steps (possibly spanning episodes)."""

    obs: np.ndarray  # [T, S, 64, 64] uint8 observation o_t
    actions: np.ndarray  # [T] int32 a_t, taken at o_t
    rewards: np.ndarray  # [T] float32 raw reward of transition t
    terminals: np.ndarray  # [T] bool, transition t ended a life or the game (discount target 0)
    dones: np.ndarray  # [T] bool, o_{t+1} starts a new episode (attention stops there)


def from_recording(recording: testdata.Recording, stack: int) -> Transitions:
    """The transitions of a recorded testdata sequence (training mode: life losses terminate)."""
    return Transitions(
        obs=testdata.stacks(recording, stack),
        actions=recording.actions.astype(np.int32),
        rewards=recording.rewards.astype(np.float32),
        terminals=recording.terminated.astype(bool),
        dones=(recording.terminated | recording.truncated).astype(bool),
    )


def collect(run: restore.RunModels, steps: int, seed: int, episodes: int | None = None):
    """Plays the run's policy in its game's evaluation-mode env; returns Transitions.

    Stops after `steps` steps or, if given, after `episodes` whole games (whichever comes first).
    Evaluation mode plays whole games, but the discount head learned life losses as terminals
    (training mode), so a life loss is recorded as a terminal; only a new game cuts attention.
    """
    env = atari.from_config(run.config, training=False, seed=seed)
    rng = np.random.default_rng(seed)
    logits_fn = acting.policy_logits(run.world_model.observation, run.actor)
    obs, lives, games = env.reset(), env.ale.lives(), 0
    fields = {name: [] for name in Transitions._fields}
    while len(fields["obs"]) < steps and (episodes is None or games < episodes):
        action = evaluation.sample(np.asarray(logits_fn(obs[None]))[0], rng)
        step = env.step(action)
        life_lost = env.ale.lives() < lives and not step.new_game
        for name, value in zip(
            Transitions._fields,
            (obs, action, step.reward, step.terminated or life_lost, step.new_game),
        ):
            fields[name].append(value)
        obs, lives, games = step.obs, env.ale.lives(), games + int(step.new_game)
    env.close()
    dtypes = (np.uint8, np.int32, np.float32, bool, bool)
    return Transitions(*(np.asarray(fields[n], d) for n, d in zip(Transitions._fields, dtypes)))


class Predictions(NamedTuple):
    """Open-loop predictions of M starts over H horizons (axis 1: horizon k = 1..H)."""

    starts: np.ndarray  # [M] start step s
    next_logits: np.ndarray  # [M, H, V, C] logits of z_{s+k}
    next_z: np.ndarray  # [M, H, V, C] the latent fed back (mode or sample of next_logits)
    reward: np.ndarray  # [M, H] predicted mean of tanh r_{s+k-1}
    discount: np.ndarray  # [M, H] predicted gamma_{s+k-1} (sigmoid of the discount logit)


def _encode(obs_model: observation.ObservationModel, obs: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [obs_model.encode(obs[i : i + _CHUNK]).numpy() for i in range(0, len(obs), _CHUNK)]
    )


def _decode(obs_model: observation.ObservationModel, z: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [obs_model.decode(z[i : i + _CHUNK]).numpy() for i in range(0, len(z), _CHUNK)]
    )


def open_loop(
    world_model: world_model_lib.WorldModel,
    data: Transitions,
    logits: np.ndarray,
    horizon: int,
    latent: str = "mode",
    seed: int = 0,
) -> Predictions:
    """Runs H-step open-loop predictions from every start s in [C, T - 1 - H].

    Args:
      world_model: the restored world model.
      data: the real transitions.
      logits: [T, V, C] encoder logits of data.obs.
      horizon: H.
      latent: "mode" (argmax) or "sample" (one draw) of each predicted latent, fed back.
      seed: stateless seed of the samples.

    Raises:
      ValueError: if data is shorter than C + H + 1 steps or latent is unknown.
    """
    if latent not in ("mode", "sample"):
        raise ValueError(f"latent must be 'mode' or 'sample', got {latent!r}")
    dynamics = world_model.dynamics
    context = world_model.config.memory_steps
    total = len(data.actions)
    if total < context + horizon + 1:
        raise ValueError(
            f"need at least memory_steps + horizon + 1 = {context + horizon + 1} steps, got {total}"
        )
    z_real = distributions.latent_mode(logits).numpy()  # [T, V, C]
    rewards = np.tanh(data.rewards).astype(np.float32)
    starts = np.arange(context, total - horizon)
    outputs = []
    for first in range(0, len(starts), _CHUNK):
        s = starts[first : first + _CHUNK]
        window = s[:, None] + np.arange(-context, 0)  # [b, C] the real context steps
        _, cache = dynamics.prefill(
            z_real[window], data.actions[window], rewards[window], data.dones[window]
        )
        z, prev_reward, reset = z_real[s], rewards[s - 1], data.dones[s - 1]
        steps = []
        for k in range(horizon):
            out, cache = dynamics.step(cache, z, data.actions[s + k], prev_reward, reset)
            if latent == "mode":
                z = distributions.latent_mode(out.next_logits)
            else:
                z = distributions.sample_latent(
                    out.next_logits, tf.constant([seed, first * 997 + k])
                )
            prev_reward, reset = out.reward, np.zeros(len(s), bool)
            steps.append(
                (out.next_logits, z, out.reward, distributions.discount(out.discount_logit).mean())
            )
        outputs.append([np.stack([np.asarray(x[i]) for x in steps], axis=1) for i in range(4)])
    fields = [np.concatenate([o[i] for o in outputs]) for i in range(4)]
    return Predictions(starts, *fields)


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def gain_ci(model: np.ndarray, baseline: np.ndarray, mask: np.ndarray) -> list[float] | None:
    """[low, high] 95 % CI of mean(baseline - model) over the starts where `mask` (all [starts],
    in start order): a circular moving-block bootstrap (fixed draws); None without starts."""
    gain = (baseline - model)[mask].astype(np.float64)
    if not len(gain):
        return None
    block = min(_BLOCK, len(gain))
    first = np.random.default_rng(0).integers(0, len(gain), (_RESAMPLES, -(-len(gain) // block)))
    index = ((first[:, :, None] + np.arange(block)) % len(gain)).reshape(_RESAMPLES, -1)
    low, high = np.percentile(gain[index[:, : len(gain)]].mean(1), [2.5, 97.5])
    return [float(low), float(high)]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


class _Real(NamedTuple):
    """What the predictions are scored against, per real step t (see `horizon_metrics`)."""

    log_q: np.ndarray  # [T, V, C] log q(z_t | o_t), the encoder's distribution
    q: np.ndarray  # [T, V, C] its probabilities
    classes: np.ndarray  # [T, V] its modes
    frames: np.ndarray  # [T, S, 64, 64] float32 o_t in [0, 1]
    posterior: np.ndarray  # [T, S, 64, 64] decoded mode of q(z_t | o_t)
    rewards: np.ndarray  # [T] tanh r_t
    done_before: np.ndarray  # [T + 1] dones in steps < t
    mean_reward: float  # mean tanh reward, the reward baseline


def _real(obs_model: observation.ObservationModel, data: Transitions, logits: np.ndarray) -> _Real:
    """The encoder's view of every real step, its decoded frames and the real rewards."""
    log_q = tf.nn.log_softmax(logits).numpy()  # [T, V, C]
    rewards = np.tanh(data.rewards)
    return _Real(
        log_q=log_q,
        q=np.exp(log_q),
        classes=logits.argmax(-1),  # [T, V]
        frames=data.obs.astype(np.float32) / 255.0,
        posterior=_decode(obs_model, distributions.latent_mode(logits).numpy()),
        rewards=rewards,
        done_before=np.concatenate([[0], np.cumsum(data.dones)]),
        mean_reward=float(rewards.mean()),
    )


def horizon_metrics(
    world_model: world_model_lib.WorldModel,
    data: Transitions,
    logits: np.ndarray,
    predictions: Predictions,
) -> list[dict]:
    """Per horizon k = 1..H: the model's errors and the trivial baselines' (see module doc)."""
    real = _real(world_model.observation, data, logits)
    s = predictions.starts
    horizon = predictions.reward.shape[1]
    results = []
    for k in range(1, horizon + 1):
        target, transition = s + k, s + k - 1
        # z_{s+k} needs no done in s..s+k-1; transition s+k-1 none in s..s+k-2.
        latent_ok = real.done_before[target] == real.done_before[s]
        reward_ok = real.done_before[transition] == real.done_before[s]
        results.append(
            {
                "horizon": k,
                "latent_count": int(latent_ok.sum()),
                "transition_count": int(reward_ok.sum()),
                **_latent_metrics(world_model, real, predictions, k, latent_ok),
                **_reward_metrics(data, real, predictions, k, reward_ok),
                **_terminal_metrics(world_model.config, data, predictions, k, reward_ok),
            }
        )
    return results


def _latent_metrics(
    world_model: world_model_lib.WorldModel,
    real: _Real,
    predictions: Predictions,
    k: int,
    latent_ok: np.ndarray,
) -> dict:
    """Decoded frames and next latents at horizon k, over the starts where latent_ok."""
    config = world_model.config
    s = predictions.starts
    target = s + k
    predicted = predictions.next_logits[:, k - 1]
    log_p = tf.nn.log_softmax(predicted).numpy()
    decoded = _decode(world_model.observation, predictions.next_z[:, k - 1])
    pixels = (1, 2, 3)
    frames, q, log_q, classes = real.frames, real.q, real.log_q, real.classes
    recon = ((decoded - frames[target]) ** 2).mean(pixels)  # [starts] each
    recon_repeat = ((frames[s] - frames[target]) ** 2).mean(pixels)
    xent = -(q[target] * log_p).sum((1, 2))
    xent_repeat = -(q[target] * log_q[s]).sum((1, 2))
    return {
        "recon_mse": _mean(recon, latent_ok),
        "recon_mse_repeat": _mean(recon_repeat, latent_ok),
        "recon_mse_gain_ci": gain_ci(recon, recon_repeat, latent_ok),
        "recon_mse_posterior": _mean(
            ((real.posterior[target] - frames[target]) ** 2).mean(pixels), latent_ok
        ),
        "latent_xent": _mean(xent, latent_ok),
        "latent_xent_repeat": _mean(xent_repeat, latent_ok),
        "latent_xent_gain_ci": gain_ci(xent, xent_repeat, latent_ok),
        "latent_xent_uniform": config.latent_vars * math.log(config.latent_classes),
        "latent_accuracy": _mean((predicted.argmax(-1) == classes[target]).mean(1), latent_ok),
        "latent_accuracy_repeat": _mean((classes[s] == classes[target]).mean(1), latent_ok),
    }


def _reward_metrics(
    data: Transitions, real: _Real, predictions: Predictions, k: int, reward_ok: np.ndarray
) -> dict:
    """Predicted rewards of transitions s + k - 1, over the starts where reward_ok."""
    s = predictions.starts
    transition = s + k - 1
    pred_reward, real_reward = predictions.reward[:, k - 1], real.rewards[transition]
    mean_reward = real.mean_reward
    nonzero = reward_ok & (data.rewards[transition] != 0)
    squared, squared_mean = (
        np.square(pred_reward - real_reward),
        np.square(mean_reward - real_reward),
    )
    return {
        "reward_mae": _mean(np.abs(pred_reward - real_reward), reward_ok),
        "reward_mae_mean": _mean(np.abs(mean_reward - real_reward), reward_ok),
        # The head is a unit-variance Gaussian: its mean is fit by squared error, so MSE
        # is the comparison that matches its training (MAE favours predicting 0).
        "reward_mse": _mean(squared, reward_ok),
        "reward_mse_mean": _mean(squared_mean, reward_ok),
        "reward_mse_gain_ci": gain_ci(squared, squared_mean, reward_ok),
        "reward_nonzero": int(nonzero.sum()),
        "reward_sign_accuracy": _mean(np.sign(pred_reward) == np.sign(real_reward), nonzero),
        "reward_sign_accuracy_mean": _mean(
            np.full(len(s), np.sign(mean_reward)) == np.sign(real_reward), nonzero
        ),
    }


def _terminal_metrics(
    config: config_lib.Config,
    data: Transitions,
    predictions: Predictions,
    k: int,
    reward_ok: np.ndarray,
) -> dict:
    """Predicted terminals (continuation < 0.5) against the real ones of transitions s + k - 1."""
    transition = predictions.starts + k - 1
    continuation = predictions.discount[:, k - 1] / config.gamma
    predicted_terminal = reward_ok & (continuation < 0.5)
    real_terminal = reward_ok & data.terminals[transition]
    hits = int((predicted_terminal & real_terminal).sum())
    return {
        "terminals": int(real_terminal.sum()),
        "terminals_predicted": int(predicted_terminal.sum()),
        "terminal_precision": _ratio(hits, int(predicted_terminal.sum())),
        "terminal_recall": _ratio(hits, int(real_terminal.sum())),
    }


def evaluate(
    run: restore.RunModels,
    data: Transitions,
    horizon: int,
    source: str,
    latent: str = "mode",
    seed: int = 0,
) -> dict:
    """The whole evaluation of `run` on `data`; returns the JSON summary (see `write`)."""
    if int(data.actions.max()) >= len(run.action_meanings):
        raise ValueError(
            f"{source} has actions up to {int(data.actions.max())}, the run's game "
            f"{run.config.game} has {len(run.action_meanings)}; record the run's game"
        )
    logits = _encode(run.world_model.observation, data.obs)
    predictions = open_loop(run.world_model, data, logits, horizon, latent, seed)
    return {
        "game": run.config.game,
        "checkpoint": run.checkpoint,
        "source": source,
        "steps": len(data.actions),
        "starts": len(predictions.starts),
        "context": run.config.memory_steps,
        "latent": latent,
        "reward_scale": "tanh",
        "horizons": horizon_metrics(run.world_model, data, logits, predictions),
    }


_PANELS = (  # title, (model key, baseline key, baseline label) ...
    ("decoded frames MSE", "recon_mse", "recon_mse_repeat", "repeat last frame"),
    ("next-latent cross-entropy (nats)", "latent_xent", "latent_xent_uniform", "uniform"),
    ("next-latent top-1 accuracy", "latent_accuracy", "latent_accuracy_repeat", "repeat latent"),
    ("reward MSE (tanh scale)", "reward_mse", "reward_mse_mean", "mean reward"),
    ("reward sign accuracy (r != 0)", "reward_sign_accuracy", "reward_sign_accuracy_mean", "mean"),
    ("terminal precision / recall", "terminal_precision", "terminal_recall", "recall"),
)


def plot(summary: dict, path: str) -> None:
    """Each metric against the horizon k, beside its trivial baseline, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = summary["horizons"]
    k = [row["horizon"] for row in rows]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, model_key, base_key, base_label) in zip(axes.flat, _PANELS):

        def series(key):
            return [np.nan if row[key] is None else row[key] for row in rows]

        model_label = "precision" if model_key == "terminal_precision" else "world model"
        ax.plot(k, series(model_key), "o-", label=model_label)
        ax.plot(k, series(base_key), "s--", label=base_label)
        if model_key == "recon_mse":
            ax.plot(k, series("recon_mse_posterior"), ":", label="VAE of the real frames")
        ax.set_title(title)
        ax.set_xlabel("horizon k (steps)")
        ax.set_xticks(k)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{summary['game']}: {summary['starts']} open-loop starts ({summary['source']}, "
        f"{summary['latent']} latents)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


FILES = ("world_model_eval.json", "world_model_eval.png")  # `write`'s.


def write(summary: dict, out_dir: str) -> tuple[str, str]:
    """Writes world_model_eval.json and world_model_eval.png to out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, png_path = (os.path.join(out_dir, name) for name in FILES)
    with files.atomic_write(json_path) as f:
        json.dump(summary, f, indent=2)
    plot(summary, png_path)
    return json_path, png_path

"""Imagined trajectories beside the real game, and the dynamics model's attention while dreaming.

From a real start (the policy plays the evaluation-mode game for a while; the last memory_steps
steps fill the Transformer-XL's memory) the policy acts inside the world model for H steps, as in
training but without restarts. The real game, restored to the start with `set_state`, then replays
the actions the imagination chose:

    imagined:  o^_s = dec(z_s)  --a_0-->  dec(z^_{s+1})  --a_1-->  ...  dec(z^_{s+H})
    real:      o_s              --a_0-->  o_{s+1}        --a_1-->  ...  o_{s+H}

Attention: the cached step feeds [r_{t-1}, z_t, a_t]; the action token's output h_t makes every
prediction, so its weights over the cache slots and the new tokens, per layer, show what a
prediction reads. Slot labels are the token kind and its step relative to t (layout in
models/dynamics.py): "z-2" is z_{t-2}, "r-1" the reward of step t - 1.
"""

import json
import os
from typing import NamedTuple

import cv2
import numpy as np
import tensorflow as tf

from twm_tf import acting
from twm_tf.analysis import world_model_quality
from twm_tf.envs import atari
from twm_tf.evaluation import protocol as evaluation
from twm_tf.models import distributions
from twm_tf.models import dynamics as dynamics_lib
from twm_tf.run import restore


class Dream(NamedTuple):
    """One imagined trajectory of H steps and the real one with the same actions."""

    imagined: np.ndarray  # [H + 1, 64, 64] uint8 newest decoded frame of z_s, z^_{s+1}..z^_{s+H}
    real: np.ndarray  # [H + 1, 64, 64] uint8 newest frame of o_s..o_{s+H}
    actions: np.ndarray  # [H] int32 a_{s+k}, sampled by the policy from the imagined z
    rewards: np.ndarray  # [H] predicted mean of tanh r_{s+k}
    discounts: np.ndarray  # [H] predicted gamma_{s+k}
    real_rewards: np.ndarray  # [H] raw reward of the real transition s + k
    real_dones: np.ndarray  # [H] bool, the real transition s + k ended the episode
    latents: np.ndarray  # [H + 1, V, C] z_s (encoder mode) and the imagined z^_{s+1}..z^_{s+H}
    attention: np.ndarray  # [H, layers, heads, L + K] the action token's weights at step s + k
    tokens: tuple[str, ...]  # [L + K] label of every key: kind and step relative to t


def token_labels(dynamics: dynamics_lib.DynamicsModel) -> tuple[str, ...]:
    """Labels of the L cache slots and K new tokens a cached step attends to, oldest first."""
    labels = []
    for relative in range(-dynamics.cache_blocks, 1):  # block of step t + relative
        block = [f"z{relative}", f"a{relative}"]
        if dynamics.tokens_per_step == 3:
            block.insert(0, f"r{relative - 1}")
        labels.extend(block)
    return tuple(labels)


def warm_up(
    run: restore.RunModels,
    env: atari.AtariEnv,
    steps: int,
    rng: np.random.Generator,
    logits_fn=None,
):
    """Plays `steps` policy steps from a reset; returns (Transitions of them, current obs).

    logits_fn: the policy's `acting.policy_logits` (default: built here; pass one to reuse
    its compiled graph over many calls).
    """
    if logits_fn is None:
        logits_fn = acting.policy_logits(run.world_model.observation, run.actor)
    obs = env.reset()
    fields = {name: [] for name in world_model_quality.Transitions._fields}
    for _ in range(steps):
        action = evaluation.sample(np.asarray(logits_fn(obs[None]))[0], rng)
        step = env.step(action)
        for name, value in zip(
            world_model_quality.Transitions._fields,
            (obs, action, step.reward, step.terminated, step.new_game),
        ):
            fields[name].append(value)
        obs = step.obs
    context = world_model_quality.Transitions(
        *(
            np.asarray(fields[name], dtype).reshape(-1, *shape)
            for name, dtype, shape in zip(
                world_model_quality.Transitions._fields,
                (np.uint8, np.int32, np.float32, bool, bool),
                (obs.shape, (), (), (), ()),
            )
        )
    )
    return context, obs


def to_pixels(frames: tf.Tensor) -> np.ndarray:
    """Decoder means in [0, 1] (any shape) -> uint8 pixels, rounded and clipped."""
    return np.clip(np.asarray(frames) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _newest_frame(frames: tf.Tensor) -> np.ndarray:
    """[..., S, 64, 64] decoder means -> [..., 64, 64] uint8 of the newest frame."""
    return to_pixels(np.asarray(frames)[..., -1, :, :])


def start_state(run: restore.RunModels, context: world_model_quality.Transitions, start_obs):
    """The memory after the real `context` steps and the inputs of the first imagined step.

    The last memory_steps steps of the context fill the cache (an empty context gives an empty
    cache and a reset).

    Returns:
      (DynamicsCache, z_s [1, V, C] the encoder mode of start_obs, prev_reward [1] tanh r_{s-1},
      reset [1] bool, True where step s sees no memory).
    """
    wm, config = run.world_model, run.config
    keep = slice(max(len(context.actions) - config.memory_steps, 0), None)
    rewards = np.tanh(context.rewards[keep]).astype(np.float32)
    if len(rewards):
        z_context = distributions.latent_mode(wm.observation.encode(context.obs[keep]))
        _, cache = wm.dynamics.prefill(
            z_context[None], context.actions[None, keep], rewards[None], context.dones[None, keep]
        )
        prev_reward, reset = rewards[-1:], context.dones[-1:]
    else:
        cache, prev_reward, reset = wm.dynamics.initial_cache(1), np.zeros(1, np.float32), [True]
    z = distributions.latent_mode(wm.observation.encode(start_obs[None]))  # [1, V, C]
    return cache, z, prev_reward, reset


def imagine(
    run: restore.RunModels,
    context: world_model_quality.Transitions,
    start_obs: np.ndarray,
    steps: int,
    seed: int = 0,
    latent: str = "sample",
):
    """Rolls out `steps` imagined steps from start_obs after the real `context` steps.

    Args:
      run: the restored models.
      context: the real steps before the start; the last memory_steps fill the memory.
      start_obs: [S, 64, 64] uint8 o_s.
      steps: H.
      seed: stateless seed of the actions and latent samples.
      latent: "sample" (as training imagination) or "mode" for each predicted latent.

    Returns:
      A Dream without the real part (real fields empty).
    """
    wm = run.world_model
    dynamics = wm.dynamics
    cache, z, prev_reward, reset = start_state(run, context, start_obs)
    seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2 * steps)
    states, actions, predicted, attention = [z], [], [], []
    for k in range(steps):
        action = distributions.sample_actions(run.actor(z), seeds[2 * k])
        out, cache = dynamics.step(
            cache, z, action, prev_reward, np.asarray(reset), return_attention=True
        )
        if latent == "mode":
            z = distributions.latent_mode(out.next_logits)
        else:
            z = distributions.sample_latent(out.next_logits, seeds[2 * k + 1])
        prev_reward, reset = out.reward, [False]
        states.append(z)
        actions.append(int(action[0]))
        predicted.append(
            (float(out.reward[0]), float(distributions.discount(out.discount_logit[0]).mean()))
        )
        # Per layer [1, heads, K, L + K]; the action token is the last query. A cache that is not
        # full yet has fewer slots: the missing oldest ones get zero weight, as empty slots would.
        weights = np.stack([np.asarray(w[0, :, -1]) for w in out.attention])
        missing = len(token_labels(dynamics)) - weights.shape[-1]
        attention.append(np.pad(weights, [(0, 0), (0, 0), (missing, 0)]))
    imagined = _newest_frame(wm.observation.decode(tf.concat(states, axis=0)))
    empty = np.zeros([0], np.float32)
    return Dream(
        imagined=imagined,
        real=np.zeros([0, *imagined.shape[1:]], np.uint8),
        actions=np.asarray(actions, np.int32),
        rewards=np.asarray([r for r, _ in predicted], np.float32),
        discounts=np.asarray([g for _, g in predicted], np.float32),
        real_rewards=empty,
        real_dones=empty.astype(bool),
        latents=tf.concat(states, axis=0).numpy(),
        attention=np.stack(attention),
        tokens=token_labels(dynamics),
    )


def replay_real(env: atari.AtariEnv, state: atari.EnvState, start_obs, actions) -> tuple:
    """Restores `state` and takes `actions`; returns (newest frames [H + 1], rewards, dones)."""
    env.set_state(state)
    frames, rewards, dones = [start_obs[-1]], [], []
    for action in actions:
        step = env.step(int(action))
        frames.append(step.obs[-1])
        rewards.append(float(step.reward))
        dones.append(bool(step.is_first))
    return np.stack(frames), np.asarray(rewards, np.float32), np.asarray(dones, bool)


def dream_from_run(
    run: restore.RunModels, steps: int, warmup: int, seed: int = 0, latent: str = "sample"
) -> Dream:
    """Plays `warmup` real steps, imagines `steps` from there and replays them in the real game."""
    env = atari.from_config(run.config, training=False, seed=seed)
    context, start_obs = warm_up(run, env, warmup, np.random.default_rng(seed))
    state = env.get_state()
    dream = imagine(run, context, start_obs, steps, seed, latent)
    real, rewards, dones = replay_real(env, state, start_obs, dream.actions)
    env.close()
    return dream._replace(real=real, real_rewards=rewards, real_dones=dones)


def _labels(dream: Dream, action_meanings) -> tuple[list[str], list[str]]:
    """Column captions of the imagined and real rows (column 0 is the start)."""
    imagined, real = ["start"], ["start"]
    for k, action in enumerate(dream.actions):
        name = action_meanings[action]
        imagined.append(f"{name}\nr={dream.rewards[k]:+.2f} g={dream.discounts[k]:.2f}")
        if len(dream.real_rewards):
            end = " end" if dream.real_dones[k] else ""
            real.append(f"{name}\nr={dream.real_rewards[k]:+g}{end}")
    return imagined, real


def plot_strip(dream: Dream, action_meanings, path: str) -> None:
    """Two rows of H + 1 frames: imagined (top) and real with the same actions (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [("imagined", dream.imagined), ("real", dream.real)]
    captions = _labels(dream, action_meanings)
    columns = len(dream.imagined)
    fig, axes = plt.subplots(2, columns, figsize=(1.3 * columns, 3.6), squeeze=False)
    for r, ((name, frames), labels) in enumerate(zip(rows, captions)):
        for c in range(columns):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(frames):
                ax.imshow(frames[c], cmap="gray", vmin=0, vmax=255)
                ax.set_title(labels[c] if c < len(labels) else "", fontsize=6)
        axes[r, 0].text(-8, 32, name, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(dream: Dream, action_meanings, path: str, scale: int = 3) -> None:
    """One GIF frame per step: the imagined frame beside the real one, with captions."""
    import imageio

    imagined_labels, real_labels = _labels(dream, action_meanings)
    size = dream.imagined.shape[-1] * scale
    frames = []
    for k in range(len(dream.imagined)):
        panels = []
        for name, row, labels in (
            ("imagined", dream.imagined, imagined_labels),
            ("real", dream.real, real_labels),
        ):
            image = cv2.resize(row[k], (size, size), interpolation=cv2.INTER_NEAREST)
            canvas = np.zeros((size + 36, size), np.uint8)
            canvas[36:] = image
            lines = [f"{name} {k}", *labels[k].split("\n")] if k < len(labels) else [name]
            for i, line in enumerate(lines[:3]):
                cv2.putText(canvas, line, (2, 10 + 11 * i), cv2.FONT_HERSHEY_PLAIN, 0.7, 255, 1)
            panels.append(canvas)
        frames.append(
            np.concatenate([panels[0], np.full((size + 36, 4), 128, np.uint8), panels[1]], 1)
        )
    imageio.mimwrite(path, frames, duration=500, loop=0)


def plot_attention(dream: Dream, path: str, max_panels: int = 4) -> list[int]:
    """Heatmaps of the head-averaged attention (rows: layers; columns: keys) at a few steps.

    Returns the imagined steps shown (evenly spaced, first and last included).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    horizon, layers = dream.attention.shape[:2]
    shown = sorted(set(np.linspace(0, horizon - 1, min(max_panels, horizon)).round().astype(int)))
    weights = dream.attention.mean(axis=2)  # [H, layers, keys]
    keys = len(dream.tokens)
    fig, axes = plt.subplots(
        len(shown),
        1,
        figsize=(max(6, 0.22 * keys), 0.9 + 0.45 * layers * len(shown)),
        squeeze=False,
    )
    for ax, k in zip(axes[:, 0], shown):
        image = ax.imshow(weights[k], aspect="auto", cmap="viridis", vmin=0)
        ax.set_yticks(range(layers), [f"layer {i}" for i in range(layers)], fontsize=7)
        ax.set_xticks(range(keys), dream.tokens, rotation=90, fontsize=6)
        ax.set_title(
            f"imagined step {k + 1}: h_t at a_t over memory (relative steps <= {-k - 1} "
            "are real context)",
            fontsize=8,
        )
        fig.colorbar(image, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [int(k) + 1 for k in shown]


FILES = ("strip.png", "dream.gif", "attention.png", "attention.npy", "dream.json")  # `write`'s.


def write(dream: Dream, action_meanings, out_dir: str) -> dict[str, str]:
    """Writes strip.png, dream.gif, attention.png, attention.npy and dream.json to out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in FILES}
    plot_strip(dream, action_meanings, paths["strip.png"])
    write_gif(dream, action_meanings, paths["dream.gif"])
    shown = plot_attention(dream, paths["attention.png"])
    np.save(paths["attention.npy"], dream.attention)
    summary = {
        "steps": len(dream.actions),
        "actions": [action_meanings[a] for a in dream.actions],
        "predicted_rewards_tanh": dream.rewards.tolist(),
        "predicted_discounts": dream.discounts.tolist(),
        "real_rewards": dream.real_rewards.tolist(),
        "real_dones": dream.real_dones.tolist(),
        "attention_shape": ["step", "layer", "head", "key"],
        "attention_tokens": list(dream.tokens),
        "attention_png_steps": shown,
    }
    with open(paths["dream.json"], "w") as f:
        json.dump(summary, f, indent=2)
    return paths

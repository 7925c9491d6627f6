"""A training run's world model as a Gymnasium environment: play it, watch it, train in it.

`DreamEnv` starts from a real observation whose real past fills the dynamics model's memory and
then runs one imagined step per `step` (the cached path of models/dynamics.py):

    reset:   real o_{s-C}, a_{s-C}, r_{s-C} ... o_{s-1}, a_{s-1}, r_{s-1} -> memory (prefill)
             z_s = mode q(z | o_s)                                -> observation dec(z_s)
    step k:  [r^_{s+k-1}, z^_{s+k}, a_{s+k}] -> h_{s+k} at a_{s+k}     (r^_{s-1} = real tanh r)
             z^_{s+k+1} ~ p(. | h), r^_{s+k}, g^_{s+k}              -> observation dec(z^_{s+k+1}),
                                                                        reward, g^ < threshold

Observations are the decoded frame stacks, uint8 [S, 64, 64] like the real env's (the reset one
too, so an agent never sees a real frame; `info["real_obs"]` holds it). Seeds follow
twm_tf/analysis/dream.imagine: after reset(seed=s), step k samples its latent with
stateless_split([s, 0])[2k + 1] and `agent_action` samples the run's policy with [2k], so the
agent playing this env reproduces `imagine`'s dream (tested). Importing twm_tf.envs registers
the env as "twm_tf/Dream-v0". dream_render.py draws its image; dream_play.py plays it in a window.
"""

import functools
import os
from typing import NamedTuple

import ale_py
import gymnasium as gym
import numpy as np
import tensorflow as tf
from gymnasium import spaces

from twm_tf import acting
from twm_tf.analysis import dream as analysis_dream
from twm_tf.analysis import world_model_quality
from twm_tf.dev import testdata
from twm_tf.envs import atari
from twm_tf.envs import dream_render
from twm_tf.models import distributions
from twm_tf.models import dynamics as dynamics_lib
from twm_tf.replay import file_format as replay_file
from twm_tf.run import checkpoint as checkpoint_lib
from twm_tf.run import restore

STARTS = ("game", "recorded", "replay")
_TANH_LIMIT = 1.0 - 1e-6  # |tanh r| is clipped here before arctanh: raw rewards stay finite.


class _Predicted(NamedTuple):
    """The next latent of an imagined step at batch 1."""

    z: tf.Tensor  # [1, V, C] one-hot z^_{t+1}
    frames: tf.Tensor  # [1, S, 64, 64] decoder mean of z^_{t+1}
    probs: tf.Tensor  # [1, V, C] p(z_{t+1} | h_t)


def _full_cache(dynamics, cache):
    """Pads a short cache (a short context) in front with empty slots to `cache_blocks` blocks.

    One cache shape from the first step on keeps the compiled step to one trace; empty slots get
    zero attention, as missing ones would.
    """
    missing = dynamics.cache_blocks - len(cache.keys[0])
    if missing == 0:
        return cache
    empty = dynamics.initial_cache(1)

    def pad(empty_layers, layers):
        return tuple(e[:missing] + tuple(c) for e, c in zip(empty_layers, layers))

    return cache._replace(
        keys=pad(empty.keys, cache.keys),
        values=pad(empty.values, cache.values),
        valid=tf.concat([empty.valid[:, : missing * dynamics.tokens_per_step], cache.valid], 1),
    )


def _pack(cache) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """A DynamicsCache as 3 tensors: keys, values [layers, blocks, heads, B, K, head_dim], valid.

    A graph call with ~2 x layers x blocks tensor inputs (340 at the paper's sizes) spends more
    time matching its inputs than computing; 3 inputs make a dream step 2-3x faster.
    """
    keys = tf.stack([tf.stack(layer) for layer in cache.keys])
    values = tf.stack([tf.stack(layer) for layer in cache.values])
    return keys, values, cache.valid


def _unpack(keys: tf.Tensor, values: tf.Tensor, valid: tf.Tensor):
    """The inverse of `_pack`."""
    return dynamics_lib.DynamicsCache(
        keys=tuple(tuple(tf.unstack(layer)) for layer in tf.unstack(keys)),
        values=tuple(tuple(tf.unstack(layer)) for layer in tf.unstack(values)),
        valid=valid,
    )


class _Graphs(NamedTuple):
    """The compiled calls of a dream at batch 1, each traced once (fixed shapes)."""

    step: tf.types.experimental.PolymorphicFunction  # XLA dynamics step -> logits, r, g, attention
    sample_and_decode: tf.types.experimental.PolymorphicFunction  # logits, seed -> _Predicted
    decode: tf.types.experimental.PolymorphicFunction  # z -> frames
    act: tf.types.experimental.PolymorphicFunction  # z, seed -> the policy's action
    policy_logits: tf.types.experimental.PolymorphicFunction  # frames -> logits (real steps)


@functools.lru_cache(maxsize=4)
def _graphs(run: restore.RunModels, latent: str) -> _Graphs:
    """The graphs of `run`'s models, shared by every env over them.

    XLA fuses the dynamics step's many small ops: at the paper's sizes a step + render took
    30 instead of 59 ms (21 / 29 ms CPU), for a longer first call (the compile, seconds).
    Sampling stays outside XLA, whose Philox stream differs from TF's kernel (twm_tf/gumbel),
    so that a seed draws what imagination draws; the decoder is faster on oneDNN anyway.
    """
    wm, actor = run.world_model, run.actor

    @tf.function(jit_compile=True)
    def step(cache, z, action, prev_reward, reset):
        out, cache = wm.dynamics.step(
            _unpack(*cache), z, action, prev_reward, reset, return_attention=True
        )
        attention = tf.stack([w[0, :, -1] for w in out.attention])  # [layers, heads, L + K]
        discount = distributions.discount(out.discount_logit).mean()
        return out.next_logits, out.reward, discount, attention, _pack(cache)

    @tf.function
    def sample_and_decode(logits, seed):
        if latent == "mode":
            z = distributions.latent_mode(logits)
        else:
            z = distributions.sample_latent(logits, seed, straight_through=False)
        return _Predicted(z, wm.observation.decode(z), tf.nn.softmax(logits))

    return _Graphs(
        step=step,
        sample_and_decode=sample_and_decode,
        decode=tf.function(wm.observation.decode),
        act=tf.function(lambda z, seed: distributions.sample_actions(actor(z), seed)),
        policy_logits=acting.policy_logits(wm.observation, actor),
    )


class DreamEnv(gym.Env):
    """The dynamics and observation models of a run as an environment (module docstring).

    Args:
      run_dir: a launch/train.py run directory; its newest checkpoint is loaded. Or:
      run: models already loaded (`restore.load_run`), e.g. shared by several envs.
      start: where reset starts. "game": a fresh evaluation-mode game of the run's game (seeded
        by reset's seed), in which the run's policy plays `context_steps` real steps first;
        "recorded": a step of the game's testdata recording; "replay": a step of the replay
        file saved with the checkpoint. The latter two take `options={"start_index": i}` (by
        default a step drawn with the env's np_random) and use the real steps before it.
      context_steps: real steps before the start that fill the memory (default memory_steps).
      latent: "sample" z^ from p(z | h) as imagination does, or take its "mode".
      terminal_threshold: `terminated` when the predicted discount falls below this.
      max_steps: imagined steps before `truncated` (default: the game's max_episode_steps).
      reward_scale: the reward `step` returns: "raw" (arctanh of the prediction, the real env's
        scale) or "tanh" (the model's); `info` carries both.
      side_by_side: start="game" only: the real game takes the same actions from the start,
        `render` shows it left of the dream, `info` carries its observation and reward.
      render_mode: None or "rgb_array".
      panel: `render` adds the latent grid, reward, discount and attention beside the frame.
      zoom: pixels per frame pixel in `render`.

    Raises:
      FileNotFoundError: run_dir has no config.json or checkpoint, or start="replay" and the
        checkpoint has no replay file.
      ValueError: for unknown options or a start without data.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        run_dir: str | None = None,
        *,
        run: restore.RunModels | None = None,
        start: str = "game",
        context_steps: int | None = None,
        latent: str = "sample",
        terminal_threshold: float = 0.5,
        max_steps: int | None = None,
        reward_scale: str = "raw",
        side_by_side: bool = False,
        render_mode: str | None = None,
        panel: bool = True,
        zoom: int = 4,
    ):
        for name, value, allowed in (
            ("start", start, STARTS),
            ("latent", latent, ("sample", "mode")),
            ("reward_scale", reward_scale, ("raw", "tanh")),
            ("render_mode", render_mode, (None, *self.metadata["render_modes"])),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if (run_dir is None) == (run is None):
            raise ValueError("give exactly one of run_dir and run")
        if side_by_side and start != "game":
            raise ValueError(f"side_by_side needs start='game' (a real game), got {start!r}")
        self.run = run if run is not None else restore.load_run(run_dir)
        config = self.run.config
        self.context_steps = config.memory_steps if context_steps is None else context_steps
        self.max_steps = config.max_episode_steps if max_steps is None else max_steps
        if self.context_steps < 0 or self.max_steps < 1 or zoom < 1:
            raise ValueError(
                "need context_steps >= 0, max_steps >= 1 and zoom >= 1, got "
                f"{self.context_steps}, {self.max_steps}, {zoom}"
            )
        self.start, self.latent, self.side_by_side = start, latent, side_by_side
        self.terminal_threshold, self.reward_scale = terminal_threshold, reward_scale
        self.render_mode, self.panel, self.zoom = render_mode, panel, zoom
        self.action_meanings = self.run.action_meanings
        self.action_space = spaces.Discrete(len(self.action_meanings))
        frame_shape = (config.frame_stack, config.frame_size, config.frame_size)
        self.observation_space = spaces.Box(0, 255, frame_shape, np.uint8)
        self.metadata = {**self.metadata, "render_fps": round(60 / config.frame_skip)}
        self.attention_tokens = analysis_dream.token_labels(self.run.world_model.dynamics)
        self._recording = self._load_recording(start)
        self._keys = None
        self._real_env = None
        self._graphs = _graphs(self.run, latent)
        self._state = None

    def _load_recording(self, start: str) -> testdata.Recording | None:
        if start == "recorded":
            return testdata.load(self.run.config.game)
        if start == "replay":
            path = checkpoint_lib.replay_path(self.run.checkpoint)
            if not os.path.exists(path):
                raise FileNotFoundError(f"no replay file {path} beside the checkpoint")
            _, arrays = replay_file.read(path)
            return testdata.Recording(**{name: arrays[name] for name in testdata.Recording._fields})
        return None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts a dream from a real observation (see `start`); returns (dec(z_s), info)."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"start_index"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: ['start_index']")
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        context, start_obs, description = self._real_start(episode_seed, options)
        cache, z, prev_reward, reset = analysis_dream.start_state(self.run, context, start_obs)
        seeds = tf.random.experimental.stateless_split(
            tf.constant([episode_seed, 0], tf.int64), 2 * self.max_steps
        ).numpy()
        self._state = {
            "cache": _pack(_full_cache(self.run.world_model.dynamics, cache)),
            "z": tf.convert_to_tensor(z),
            "prev_reward": tf.constant(prev_reward, tf.float32),
            "reset": tf.constant(reset, tf.bool),
            "seeds": seeds,
            "steps": 0,
            "obs": analysis_dream.to_pixels(self._graphs.decode(z)[0]),
            "probs": tf.nn.softmax(self.run.world_model.observation.encode(start_obs[None]))[0],
            "last": None,  # the last step's predictions for render
            "real": {"obs": start_obs, "reward": 0.0, "game_over": False},
        }
        info = {"z": z[0].numpy(), "real_obs": start_obs.copy(), "start": description, "step": 0}
        return self._state["obs"].copy(), info

    def _real_start(self, episode_seed: int, options: dict):
        """(context Transitions, start o_s [S, 64, 64], description) of the chosen start."""
        config = self.run.config
        if self.start == "game":
            if self._real_env is not None:
                self._real_env.close()
            env = atari.from_config(config, training=False, seed=episode_seed)
            rng = np.random.default_rng(episode_seed)
            context, start_obs = analysis_dream.warm_up(
                self.run, env, self.context_steps, rng, self._graphs.policy_logits
            )
            self._real_env = env if self.side_by_side else None
            if not self.side_by_side:
                env.close()
            description = f"{config.game} game seed {episode_seed} after {len(context.actions)} "
            return context, start_obs, description + "policy steps"
        steps = len(self._recording.actions)
        index = options.get("start_index")
        if index is None:
            index = int(self.np_random.integers(min(self.context_steps, steps - 1), steps))
        if not 0 <= index < steps:
            raise ValueError(f"start_index must be in [0, {steps}), got {index}")
        # Stacks are rebuilt from single frames, so a slice needs S - 1 steps more in front.
        first = index - min(self.context_steps, index)
        low = max(first - (config.frame_stack - 1), 0)
        piece = testdata.Recording(*(field[low : index + 1] for field in self._recording))
        steps_in = world_model_quality.from_recording(piece, config.frame_stack)
        context = world_model_quality.Transitions(*(field[first - low : -1] for field in steps_in))
        return context, steps_in.obs[-1], f"{self.start} step {index} of {steps}"

    def agent_action(self) -> int:
        """The run's policy's action at the current z, sampled with this step's seed."""
        state = self._require_reset()
        return int(self._graphs.act(state["z"], state["seeds"][2 * state["steps"]])[0])

    def step(self, action):
        """One imagined step; returns (dec(z^), reward, terminated, truncated, info).

        Raises:
          ValueError: if action is not one of the game's actions.
        """
        state = self._require_reset()
        if state["steps"] >= self.max_steps:
            raise RuntimeError(f"the dream was truncated after {self.max_steps} steps; reset()")
        if not self.action_space.contains(action):
            raise ValueError(
                f"action {action!r} is out of range: {self.run.config.game} has "
                f"{self.action_space.n} actions, 0..{self.action_space.n - 1} "
                f"({', '.join(self.action_meanings)})"
            )
        action = int(action)
        k = state["steps"]
        action_t = tf.constant([action], tf.int32)
        logits, reward_mean, discount, attention, state["cache"] = self._graphs.step(
            state["cache"], state["z"], action_t, state["prev_reward"], state["reset"]
        )
        predicted = self._graphs.sample_and_decode(logits, state["seeds"][2 * k + 1])
        reward_tanh, discount = float(reward_mean[0]), float(discount[0])
        reward_raw = float(np.arctanh(np.clip(reward_tanh, -_TANH_LIMIT, _TANH_LIMIT)))
        terminated = discount < self.terminal_threshold
        state.update(
            z=predicted.z,
            prev_reward=reward_mean,
            reset=tf.zeros([1], tf.bool),
            steps=k + 1,
            obs=analysis_dream.to_pixels(predicted.frames[0]),
            probs=predicted.probs[0],
        )
        attention = attention.numpy()
        heads = {"reward_raw": reward_raw, "reward_tanh": reward_tanh, "discount": discount}
        state["last"] = dict(heads, action=action, terminated=terminated, attention=attention)
        info = {"z": predicted.z[0].numpy(), **heads, "attention": attention.copy(), "step": k + 1}
        if self._real_env is not None:
            info.update(self._real_step(action))
        reward = reward_raw if self.reward_scale == "raw" else reward_tanh
        truncated = k + 1 >= self.max_steps and not terminated
        return state["obs"].copy(), reward, terminated, truncated, info

    def _real_step(self, action: int) -> dict:
        """Steps the real game beside the dream (until its game ends)."""
        real = self._state["real"]
        if not real["game_over"]:
            step = self._real_env.step(action)
            real.update(obs=step.obs, reward=float(step.reward), game_over=bool(step.new_game))
        return {
            "real_obs": real["obs"].copy(),
            "real_reward": real["reward"],
            "real_game_over": real["game_over"],
        }

    def _require_reset(self) -> dict:
        if self._state is None:
            raise RuntimeError("call reset() before step(), agent_action() or render()")
        return self._state

    def get_keys_to_action(self) -> dict[tuple[str, ...], int]:
        """ALE's key map of the game (w/a/s/d, space = FIRE, e = NOOP), for gymnasium.utils.play."""
        if self._keys is None:
            gym.register_envs(ale_py)
            ale = gym.make(f"ALE/{self.run.config.game}-v5", full_action_space=False)
            self._keys = dict(ale.unwrapped.get_keys_to_action())
            ale.close()
        return dict(self._keys)

    def set_latent(self, variable: int, value: int) -> None:
        """Sets variable `variable` of the current z to class `value` (as clicking the grid).

        The next step reads the edited z; the observation and the grid show it at once.
        """
        state = self._require_reset()
        config = self.run.config
        if not (0 <= variable < config.latent_vars and 0 <= value < config.latent_classes):
            raise ValueError(
                f"need 0 <= variable < {config.latent_vars} and 0 <= value < "
                f"{config.latent_classes}, got {variable}, {value}"
            )
        z, probs = state["z"].numpy(), state["probs"].numpy()
        z[0, variable] = probs[variable] = np.eye(config.latent_classes)[value]
        state["z"], state["probs"] = tf.constant(z), tf.constant(probs)
        state["obs"] = analysis_dream.to_pixels(self._graphs.decode(state["z"])[0])

    def render(self) -> np.ndarray | None:
        """[H, W, 3] uint8: the newest frame and the panel (dream_render.Renderer)."""
        if self.render_mode is None:
            gym.logger.warn("render() without render_mode: create the env with rgb_array")
            return None
        return dream_render.Renderer(self).draw(self._require_reset())

    def latent_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(variable, class) of the latent grid cell at pixel (x, y) of `render`'s image."""
        return dream_render.Renderer(self).latent_at(x, y)

    def close(self) -> None:
        if self._real_env is not None:
            self._real_env.close()
            self._real_env = None

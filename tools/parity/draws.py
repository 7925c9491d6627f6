"""The random draws of one update, recorded from twm-tf and replayed into either code.

Every sample twm-tf takes (latents, actions) is argmax(logits + Gumbel noise), all of that noise
comes from `twm_tf.ops.gumbel.noise`, and every dropout mask from `models.dropout.Dropout`.
`Draws.inject()` replaces both for the duration of a block: in record mode each call gets fresh
draws from a NumPy generator (float32 Gumbel noise; Bernoulli keep masks at the layer's rate), in
replay mode the recorded arrays come back in call order (their shapes are checked). The torch
side takes the same arrays for the same samples in the same order.

The observations that restarting rollouts re-encode are recorded too (`encode`): twm-tf picks them
from the restart pool with its own stateless seed, the original's start sampler then gets them.

One update draws, in order (N windows of L steps, M rollouts, A actions, K = 3L - 1 tokens):

    dropout masks of the dynamics model's training pass (only if dyn_dropout > 0), by site:
      position [K, D]; per block: attention [heads, N, K, K], token [N, K, D] (attention output),
      token [N, K, ffn], token [N, K, D]; per head (latent, reward, discount) and hidden layer:
      head [N, L, width]
    noise [1, N, L, V, C]  the world model's latent samples (the original takes step 0 for the
                           context and steps 1..l for the trained latents)
    per imagined step t = 0..H-1:
      noise [1, M, A]      the action a_t
      noise [M, V, C]      the next latent z_{t+1}
      noise [n, V, C]      the n restarting rollouts' latents, only at steps where n > 0
"""

import contextlib

import numpy as np
import tensorflow as tf

from tools.parity import draws_file
from twm_tf.ops import dropout as dropout_lib
from twm_tf.ops import gumbel


def dropout_sites(dynamics) -> dict[int, str]:
    """id(Dropout layer) -> site kind (position, attention, token, head) of a DynamicsModel."""
    transformer = dynamics.transformer
    sites = {id(transformer.position_dropout): "position"}
    for block in transformer.blocks:
        sites[id(block.attention.dropout)] = "attention"
        sites[id(block.dropout)] = "token"
    for head in (dynamics.latent_head, dynamics.reward_head, dynamics.discount_head):
        sites[id(head.dropout)] = "head"
    return sites


class Draws:
    """Gumbel noise, dropout masks and restart observations, in call order."""

    def __init__(self, noise=None, masks=None, restart_frames=None, seed: int | None = None):
        """Replays `noise`, `masks` ((kind, bool array) pairs) and `restart_frames` if given,
        else records from `seed`."""
        self.recording = noise is None
        self.noise_arrays = [] if noise is None else list(noise)
        self.masks = [] if masks is None else list(masks)
        self.restart_frames = [] if restart_frames is None else list(restart_frames)
        self.sites: dict[int, str] = {}
        self._rng = np.random.default_rng(seed) if self.recording else None
        self._used = {"noise": 0, "mask": 0, "restart": 0}

    def _take(self, kind: str, items: list, make, shape):
        index = self._used[kind]
        if self.recording:
            items.append(make())
        elif index >= len(items):
            raise ValueError(f"{kind} {index} of shape {shape} was never recorded")
        self._used[kind] += 1
        return items[index]

    def _noise(self, shape, seed=None) -> tf.Tensor:
        del seed  # The draws replace the stateless streams.
        shape = tuple(int(d) for d in np.asarray(shape))
        value = self._take(
            "noise",
            self.noise_arrays,
            lambda: self._rng.gumbel(size=shape).astype(np.float32),
            shape,
        )
        if value.shape != shape:
            raise ValueError(f"noise has shape {value.shape}, the call wants {shape}")
        return tf.constant(value)

    def _dropout(self, layer, inputs, training=False):
        """Dropout.call with a recorded keep mask (same arithmetic as twm-tf's)."""
        if not training or layer.rate == 0:
            return inputs
        kind, shape = self.sites[id(layer)], tuple(inputs.shape)
        site, keep = self._take(
            "mask",
            self.masks,
            lambda: (kind, self._rng.random(shape) >= layer.rate),
            shape,
        )
        if (site, keep.shape) != (kind, shape):
            raise ValueError(f"mask of {site} {keep.shape}, the call is {kind} {shape}")
        scaled = inputs * (1.0 / (1.0 - layer.rate))
        return tf.where(tf.constant(keep), scaled, tf.zeros([], inputs.dtype))

    @contextlib.contextmanager
    def inject(self, dynamics=None):
        """Routes twm-tf's Gumbel noise (and the dropout of `dynamics`) to these draws.

        Eager code only: the draws' shapes are read from the calls.
        """
        self.sites = {} if dynamics is None else dropout_sites(dynamics)
        noise, call = gumbel.noise, dropout_lib.Dropout.call
        gumbel.noise = self._noise
        draws = self
        dropout_lib.Dropout.call = lambda layer, *a, **k: draws._dropout(layer, *a, **k)
        try:
            yield self
        finally:
            gumbel.noise, dropout_lib.Dropout.call = noise, call
        if not self.recording:
            for kind, items in (("noise", self.noise_arrays), ("mask", self.masks)):
                if self._used[kind] != len(items):
                    raise ValueError(f"{len(items) - self._used[kind]} recorded {kind} unused")

    def encode(self, encode_fn):
        """Wraps the restart encoder so that the observations it is given are recorded."""

        def logged(frames):
            frames = np.asarray(frames)
            index = self._used["restart"]
            if self.recording:
                self.restart_frames.append(frames)
            elif not np.array_equal(frames, self.restart_frames[index]):
                raise ValueError(f"restart {index} encodes other observations")
            self._used["restart"] += 1
            return encode_fn(frames)

        return logged

    def save(self, path: str) -> None:
        draws_file.write(path, self.noise_arrays, self.masks, self.restart_frames)


def load(path: str) -> Draws:
    """Draws in replay mode from a file written by `Draws.save`."""
    noise, masks, frames = draws_file.read(path)
    return Draws(noise=noise, masks=masks, restart_frames=frames)

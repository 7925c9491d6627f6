"""The exported policy on LiteRT (TensorFlow Lite): NumPy and ai-edge-litert only, no TensorFlow.

`export.export_policy` writes `policy.tflite` into the SavedModel directory: the same encoder and
actor, uint8 frames [B, stack, 64, 64] -> action logits [B, A] float32. LiteRT runs it with its
XNNPACK kernels, which at batch 1 take half (2 threads) to three quarters (1 thread) of the
XLA-compiled SavedModel's time on CPU (docs/benchmarks.md). Sampling happens here, in NumPy:

    policy = LiteRtPolicy(path, num_threads=2)
    actions, probs = policy.act(frames)                 # sampled; greedy=True for argmax
    policy.logits(frames)                               # [B, A] float32
    policy.metadata["game"], policy.metadata["action_meanings"]

The same seed gives the same actions on every run, but not the SavedModel's actions: both sample
the same distribution from different random streams.
"""

import os

import numpy as np
from ai_edge_litert import interpreter as litert

from twm_tf import files

MODEL_FILE = "policy.tflite"
_METADATA = os.path.join("assets", "metadata.json")


class LiteRtPolicy:
    """An exported policy directory run by the LiteRT interpreter."""

    def __init__(self, policy_dir: str, num_threads: int = 1, seed: int = 0):
        """Loads `policy_dir`/policy.tflite and the export's metadata.

        Args:
            policy_dir: a directory written by export.export_policy.
            num_threads: XNNPACK threads (batch 1: 2 threads take ~0.65x the time of 1).
            seed: seeds the action sampling.

        Raises:
            FileNotFoundError: if policy_dir holds no policy.tflite (exports before it had none).
            files.FileError: if the export is damaged or partial: its metadata cannot be read,
                the model does not load, or the two disagree on the frames.
        """
        model = os.path.join(policy_dir, MODEL_FILE)
        if not os.path.exists(model):
            raise FileNotFoundError(
                f"{policy_dir} has no {MODEL_FILE}; re-export it with launch/export_policy.py"
            )
        damaged = f"; {policy_dir} is a damaged or partial export: export it again"
        try:
            self.metadata = files.read_json(
                os.path.join(policy_dir, _METADATA),
                "the export's metadata",
                {"frame_stack": int, "frame_size": int, "action_meanings": list},
            )
            self._interpreter = litert.Interpreter(model_path=model, num_threads=num_threads)
        except (files.FileError, ValueError, RuntimeError) as error:
            raise files.FileError(f"{error}{damaged}") from None
        self.frame_shape = (
            self.metadata["frame_stack"],
            self.metadata["frame_size"],
            self.metadata["frame_size"],
        )
        inputs = self._interpreter.get_input_details()
        model_shape = tuple(int(n) for n in inputs[0]["shape_signature"][1:]) if inputs else ()
        if len(inputs) != 1 or inputs[0]["dtype"] != np.uint8 or model_shape != self.frame_shape:
            raise files.FileError(
                f"{model} does not take the uint8 frames {list(self.frame_shape)} of its "
                f"metadata{damaged}"
            )
        self._input = inputs[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        self.set_seed(seed)

    def set_seed(self, seed: int) -> None:
        """Restarts the action sampling's random stream."""
        self._rng = np.random.default_rng(seed)

    def logits(self, frames: np.ndarray) -> np.ndarray:
        """[B, stack, 64, 64] uint8 frames, oldest first -> [B, A] float32 action logits.

        Raises:
            ValueError: if frames are not uint8 of shape [B, *frame_shape].
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != self.frame_shape:
            raise ValueError(
                f"frames: expected uint8 [B, {', '.join(map(str, self.frame_shape))}], "
                f"got {frames.dtype} {list(frames.shape)}"
            )
        if frames.shape[0] != self._batch:  # Resizing re-plans the graph: only on a new batch.
            # Strict: only the batch of the model's [-1, S, 64, 64] input may change.
            self._interpreter.resize_tensor_input(self._input, frames.shape, strict=True)
            self._interpreter.allocate_tensors()
            self._batch = frames.shape[0]
        self._interpreter.set_tensor(self._input, frames)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)

    def act(self, frames: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Returns actions [B] int32 (sampled, or the argmax if greedy) and probabilities [B, A]."""
        logits = self.logits(frames)
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        if greedy:
            actions = logits.argmax(axis=-1)
        else:  # Inverse CDF; u < cdf[-1] even when rounding leaves the sum just below 1.
            cdf = probs.cumsum(axis=-1)
            u = self._rng.random((len(probs), 1)) * cdf[:, -1:]
            actions = (cdf <= u).sum(axis=-1)
        return actions.astype(np.int32), probs

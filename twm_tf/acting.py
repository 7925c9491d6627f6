"""The policy in the real environment: the actor on the mode of z, no transformer.

The learner acts with it during training, the evaluation protocol plays its games with it, and
the analysis tools drive real games with it; the exported SavedModel holds the same computation
(deploy/export.py).
"""

from collections.abc import Callable

import tensorflow as tf

from twm_tf.models import actor_critic
from twm_tf.models import distributions
from twm_tf.models import observation

Logits = Callable[[tf.Tensor], tf.Tensor]  # uint8 frames [B, stack, 64, 64] -> logits [B, A]


def policy_logits(obs_model: observation.ObservationModel, actor: actor_critic.Actor) -> Logits:
    """The policy's logits: the actor on the mode of z (no transformer)."""
    frames_spec = tf.TensorSpec([None, *obs_model.frame_shape], tf.uint8)

    # XLA: at batch 1 (acting) TF's per-op dispatch costs more than the convs and matmuls.
    @tf.function(input_signature=[frames_spec], jit_compile=True)
    def logits(frames):
        classes = distributions.latent_mode_classes(obs_model.encode(frames))
        return tf.cast(actor.from_classes(classes), tf.float32)

    return logits


def policy_function(
    obs_model: observation.ObservationModel, actor: actor_critic.Actor
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The acting policy: actions sampled from `policy_logits` with a [2] stateless seed."""
    logits = policy_logits(obs_model, actor)

    @tf.function(
        input_signature=[*logits.input_signature, tf.TensorSpec([2], tf.int64)], jit_compile=True
    )
    def act(frames, seed):
        return distributions.sample_actions(logits(frames), seed)

    return act

"""TWM's thresholded entropy regularizer (policy and latent alike)."""

import math

import tensorflow as tf


def thresholded_entropy_loss(
    entropy: tf.Tensor, num_classes: int, threshold: float, num_vars: int = 1
) -> tf.Tensor:
    """max(0, threshold - entropy / (num_vars ln num_classes)), the normalized entropy's hinge.

    Args:
        entropy: entropy in nats of num_vars categoricals, summed (any shape).
        num_classes: classes per categorical (>= 2); num_vars ln of it is the maximum entropy.
        threshold: normalized entropy in [0, 1] above which the loss is 0.
        num_vars: categoricals whose entropies `entropy` sums (32 for TWM's latent, 1 for the
            policy).

    Returns:
        The loss, same shape as `entropy`.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return tf.nn.relu(threshold - entropy / (num_vars * math.log(num_classes)))

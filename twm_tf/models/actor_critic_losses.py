"""The actor's and the critic's losses on a batch of imagined (or real) sequences."""

import math

import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.models import distributions
from twm_tf.models import entropy as entropy_lib


def actor_loss(
    logits: tf.Tensor,
    actions: tf.Tensor,
    advantages: tf.Tensor,
    weights: tf.Tensor,
    config: config_lib.Config,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """REINFORCE with GAE advantages plus the thresholded entropy regularizer (paper Eq. 10).

    loss = -mean(w_t log pi(a_t|z_t) sg(A_t))
           + entropy_coef * max(0, entropy_threshold - mean(w_t H(pi(.|z_t))) / ln A)

    Args:
        logits: [M, H, A] policy logits at z_t.
        actions: [M, H] int, a_t.
        advantages: [M, H] A_t (gradients are stopped).
        weights: [M, H] w_t (gradients are stopped).
        config: uses entropy_coef and entropy_threshold.

    Returns:
        (loss, metrics) with scalar loss.
    """
    advantages = tf.stop_gradient(advantages)
    weights = tf.stop_gradient(weights)
    policy = distributions.policy(logits)
    log_prob = policy.log_prob(tf.cast(actions, tf.int32))  # [M, H]
    reinforce = tf.reduce_mean(weights * log_prob * advantages)
    entropy = tf.reduce_mean(weights * policy.entropy())
    num_actions = logits.shape[-1]
    entropy_loss = entropy_lib.thresholded_entropy_loss(
        entropy, num_actions, config.entropy_threshold
    )
    loss = -reinforce + config.entropy_coef * entropy_loss
    metrics = {
        "actor/loss": loss,
        "actor/reinforce": reinforce,
        "actor/entropy": entropy,
        "actor/normalized_entropy": entropy / math.log(num_actions),
        "actor/advantage_mean": tf.reduce_mean(advantages),
        "actor/advantage_std": tf.math.reduce_std(advantages),
        "actor/weight_mean": tf.reduce_mean(weights),
    }
    return loss, metrics


def entropy_actor_loss(
    logits: tf.Tensor, weights: tf.Tensor, config: config_lib.Config
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Pretraining actor loss: only maximizes the normalized policy entropy.

    The prefill data comes from a uniformly random policy, so the actor is kept close to it
    (as in the released code): loss = -entropy_coef * mean(w_t H(pi(.|z_t))) / ln A.

    Args:
        logits: [M, H, A] policy logits.
        weights: [M, H] w_t (gradients are stopped).
        config: uses entropy_coef.

    Returns:
        (loss, metrics) with scalar loss.
    """
    num_actions = logits.shape[-1]
    entropy = tf.reduce_mean(tf.stop_gradient(weights) * distributions.policy(logits).entropy())
    normalized = entropy / math.log(num_actions)
    loss = -config.entropy_coef * normalized
    metrics = {
        "actor/loss": loss,
        "actor/entropy": entropy,
        "actor/normalized_entropy": normalized,
    }
    return loss, metrics


def critic_loss(
    values: tf.Tensor, returns: tf.Tensor, weights: tf.Tensor
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Weighted regression to the lambda-returns: mean(w_t * 0.5 * (V(z_t) - sg R_t)^2).

    Args:
        values: [M, H] V(z_t) with gradients.
        returns: [M, H] R_t (gradients are stopped).
        weights: [M, H] w_t (gradients are stopped).

    Returns:
        (loss, metrics) with scalar loss.
    """
    returns = tf.stop_gradient(returns)
    errors = values - returns
    loss = tf.reduce_mean(tf.stop_gradient(weights) * 0.5 * tf.square(errors))
    metrics = {
        "critic/loss": loss,
        "critic/value_mean": tf.reduce_mean(values),
        "critic/return_mean": tf.reduce_mean(returns),
        "critic/abs_error": tf.reduce_mean(tf.abs(errors)),
    }
    return loss, metrics

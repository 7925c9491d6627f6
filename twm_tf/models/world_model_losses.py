"""The world model's losses: the VAE's L_obs (paper Eq. 7) and the dynamics L_dyn (Eq. 8)."""

import math

import tensorflow as tf

from twm_tf import config as config_lib
from twm_tf.models import distributions
from twm_tf.models import dynamics
from twm_tf.models import entropy as entropy_lib


def observation_loss(
    frames: tf.Tensor,
    reconstruction: tf.Tensor,
    logits: tf.Tensor,
    prior_logits: tf.Tensor | None,
    config: config_lib.Config,
    prior_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The VAE loss of TWM (paper Eq. 7), averaged over all leading dims.

        L_obs = 0.5 * sum_pixels (o_hat - o)^2
              + alpha1 * max(0, Gamma_z - H(q(z|o)) / (V ln C))
              + alpha2 * sum_vars -sum_c sg(p_c) log q_c

    H(q) is summed over the V variables and averaged before it is normalized and thresholded.
    The consistency term's direction is a deliberate choice (see `consistency_loss`).

    Args:
        frames: [..., S, 64, 64] uint8 targets.
        reconstruction: [..., S, 64, 64] float decoder mean in the [0, 1] scale.
        logits: [..., V, C] float logits of q(z|o).
        prior_logits: [..., V, C] float logits of the dynamics prediction p(z_hat|h) for the same
            steps, or None to skip the consistency term (pretraining).
        config: supplies alpha1, entropy_threshold_z (Gamma_z) and alpha2.
        prior_mask: [...] bool, where prior_logits is a real prediction; None = everywhere.

    Returns:
        The float32 scalar total and a metrics dict of float32 scalars: obs/loss (total),
        obs/recon, obs/entropy (H summed over variables), obs/norm_entropy, obs/entropy_loss
        (unweighted hinge), obs/consistency (if prior_logits is given) and obs/recon_mae.
    """
    target = tf.cast(frames, tf.float32) / 255.0
    error = tf.cast(reconstruction, tf.float32) - target
    recon = 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(error), axis=[-3, -2, -1]))

    posterior = distributions.latent(logits)
    entropy = tf.reduce_mean(posterior.entropy())
    num_vars, num_classes = logits.shape[-2], logits.shape[-1]
    norm_entropy = entropy / (num_vars * math.log(num_classes))
    entropy_loss = entropy_lib.thresholded_entropy_loss(
        entropy, num_classes, config.entropy_threshold_z, num_vars
    )
    total = recon + config.alpha1 * entropy_loss

    metrics = {
        "obs/recon": recon,
        "obs/entropy": entropy,
        "obs/norm_entropy": norm_entropy,
        "obs/entropy_loss": entropy_loss,
        "obs/recon_mae": tf.reduce_mean(tf.abs(tf.stop_gradient(error))),
    }
    if prior_logits is not None:
        consistency = consistency_loss(logits, prior_logits, prior_mask)
        total += config.alpha2 * consistency
        metrics["obs/consistency"] = consistency
    metrics["obs/loss"] = total
    return total, {name: tf.stop_gradient(value) for name, value in metrics.items()}


def consistency_loss(
    logits: tf.Tensor, prior_logits: tf.Tensor, prior_mask: tf.Tensor | None = None
) -> tf.Tensor:
    """L_obs's consistency term: mean over the predicted steps of -sum_vars sum_c sg(p_c) log q_c.

    A deliberate choice. The paper's Eq. 7 (and docs/spec.md) write H(q, sg p) =
    -sum_c q_c log sg(p_c); twm-tf keeps the released code's -sum_c sg(p_c) log q_c, i.e. the
    stop-gradient prediction p(z_hat|h) is the target and the encoder's q(z|o) the model. Per
    categorical its gradient w.r.t. the encoder logits is q - sg(p) (times alpha2), that of a
    cross-entropy with target p: it pulls q toward the prediction, is bounded, and vanishes where
    p = q (a step whose own posterior stands in for the missing prediction adds no gradient). The
    paper's form would instead have gradient q_c * (E_q[log p] - log p_c), which involves log p:
    it moves q onto the classes p rates most likely (mode-seeking, nonzero even at q = p) and is
    unbounded where p_c -> 0.

    Args:
        logits: [..., V, C] float logits of q(z|o).
        prior_logits: [..., V, C] logits of the dynamics prediction p(z_hat|h) (gradient stopped).
        prior_mask: [...] bool, where prior_logits is a real prediction; None = everywhere. Steps
            without one (a window's first step, the first step after an episode end) are left out.

    Returns:
        The unweighted scalar term, averaged over the steps `prior_mask` keeps.
    """
    prior = distributions.latent(tf.stop_gradient(prior_logits))
    cross_entropy = prior.cross_entropy(distributions.latent(logits))  # [...]
    if prior_mask is None:
        return tf.reduce_mean(cross_entropy)
    mask = tf.cast(prior_mask, tf.float32)
    return tf.reduce_sum(mask * cross_entropy) / tf.maximum(tf.reduce_sum(mask), 1.0)


def dynamics_loss(
    output: dynamics.DynamicsOutput,
    target_logits: tf.Tensor,
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    dones: tf.Tensor,
    config: config_lib.Config,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """L_dyn = H(sg q(z_{t+1}), p(z_{t+1} | h_t)) + beta1 NLL(r_t) + beta2 NLL(gamma_t) (Eq. 8).

    Args:
      output: DynamicsOutput of a window, [B, T, ...].
      target_logits: [B, T, V, C] encoder logits of z_{t+1} (gradient stopped here).
      rewards: [B, T] tanh rewards r_t.
      terminated: [B, T] bool, transition t reached a terminal (discount target 0).
      dones: [B, T] bool, terminated or truncated: z_{t+1} starts a new episode and is no target.
      config: uses gamma, beta1, beta2.

    Returns:
      (scalar total, metrics) with the unweighted terms under "dyn/latent", "dyn/reward",
      "dyn/discount". The latent cross-entropy sums over the V variables and averages over the
      unmasked steps; reward and discount terms average over all steps. The reward NLL is that of
      a unit-variance Normal, 0.5 (r - mean)^2 + 0.5 ln(2 pi); the discount NLL is the Bernoulli's
      for the soft target gamma (1 - terminal), i.e. the sigmoid cross-entropy.
    """
    target = distributions.latent(tf.stop_gradient(target_logits))
    cross_entropy = target.cross_entropy(distributions.latent(output.next_logits))  # [B, T]
    weights = 1.0 - tf.cast(dones, tf.float32)
    latent = tf.reduce_sum(weights * cross_entropy) / tf.maximum(tf.reduce_sum(weights), 1.0)
    rewards = tf.cast(rewards, tf.float32)
    reward = -tf.reduce_mean(distributions.reward(output.reward).log_prob(rewards))
    discount_target = config.gamma * (1.0 - tf.cast(terminated, tf.float32))
    discount_head = distributions.discount(output.discount_logit)
    discount = -tf.reduce_mean(discount_head.log_prob(discount_target))
    total = latent + config.beta1 * reward + config.beta2 * discount
    metrics = {
        "dyn/loss": total,
        "dyn/latent": latent,
        "dyn/reward": reward,
        "dyn/discount": discount,
        "dyn/reward_mae": tf.reduce_mean(tf.abs(rewards - output.reward)),
        "dyn/discount_mae": tf.reduce_mean(tf.abs(discount_target - discount_head.mean())),
    }
    return total, metrics

"""Returns of imagined and real sequences: discount weights and GAE lambda-returns."""

import tensorflow as tf


# Loss weights: how much an imagined step still counts after the predicted episode-continuation
# probabilities of the steps before it. A restart (z_t re-drawn from the buffer) begins anew:
#
#   step t:       0      1       2            3      4
#   discounts:    g_0    g_1     g_2          g_3    g_4
#   restarts:     -      F       F            T      F
#   weights:      1      g_0     g_0 g_1      1      g_3
#
# restarts[:, 0] is irrelevant: the first step always weighs 1.
def discount_weights(discounts: tf.Tensor, restarts: tf.Tensor) -> tf.Tensor:
    """Cumulative product of the predicted discounts before each step since the last (re)start.

    Args:
        discounts: [M, H] float, gamma_hat_t predicted for the transition z_t -> z_{t+1}.
        restarts: [M, H] bool, step t begins a fresh rollout (z_t was re-drawn from the buffer).

    Returns:
        weights: [M, H] float32 w_t with w_0 = 1 and w_t = 1 at a restart, stop-gradient.
    """
    discounts = tf.convert_to_tensor(discounts, tf.float32)
    keep = 1.0 - tf.cast(restarts, tf.float32)
    # The discount before step 0 is 1, so w_0 = 1 whatever restarts[:, 0] says.
    previous_discounts = tf.concat([tf.ones_like(discounts[:, :1]), discounts[:, :-1]], axis=1)

    def weight(previous_weight, step):
        previous_discount, keep_t = step  # [M] each
        return keep_t * previous_weight * previous_discount + (1.0 - keep_t)

    weights = tf.scan(
        weight,
        (tf.transpose(previous_discounts), tf.transpose(keep)),  # [H, M] each
        initializer=tf.ones_like(discounts[:, 0]),
    )
    weights = tf.transpose(weights)
    return tf.stop_gradient(weights)


# Time alignment of one rollout with H = 3 (values has H + 1 entries, the last one bootstraps):
#
#   z:          z_0     z_1     z_2     z_3
#   values:     V_0     V_1     V_2     V_3
#   actions:    a_0     a_1     a_2
#   rewards:    r_0     r_1     r_2             r_t, g_t predicted for z_t, a_t -> z_{t+1}
#   discounts:  g_0     g_1     g_2             g_t zeroed where done_t: z_{t+1} is a restart
#   deltas:     d_0     d_1     d_2             d_t = r_t + g_t V_{t+1} - V_t
#   advantages: A_0 <-- A_1 <-- A_2 <-- 0       A_t = d_t + g_t lam A_{t+1}
#   returns:    R_0     R_1     R_2             R_t = A_t + V_t
def lambda_returns(
    rewards: tf.Tensor,
    values: tf.Tensor,
    discounts: tf.Tensor,
    dones: tf.Tensor,
    lam: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Generalized advantage estimates and lambda-returns, computed backwards in time.

    Args:
        rewards: [M, H] float, r_t.
        values: [M, H+1] float, V(z_t); values[:, H] is the state after the last step.
        discounts: [M, H] float, gamma_hat_t.
        dones: [M, H] bool, the rollout is cut after step t (z_{t+1} starts a new one), so neither
            value nor advantage flows back across it.
        lam: GAE lambda in [0, 1].

    Returns:
        (advantages, returns): [M, H] float32 each, stop-gradient.
    """
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    values = tf.convert_to_tensor(values, tf.float32)
    discounts = tf.convert_to_tensor(discounts, tf.float32) * (1.0 - tf.cast(dones, tf.float32))
    deltas = rewards + discounts * values[:, 1:] - values[:, :-1]  # [M, H]

    def advantage(next_advantage, step):
        delta, lam_discount = step  # [M] each
        return delta + lam_discount * next_advantage

    advantages = tf.scan(
        advantage,
        (tf.transpose(deltas), tf.transpose(lam * discounts)),  # [H, M] each
        initializer=tf.zeros_like(deltas[:, 0]),
        reverse=True,
    )
    advantages = tf.transpose(advantages)
    returns = advantages + values[:, :-1]
    return tf.stop_gradient(advantages), tf.stop_gradient(returns)

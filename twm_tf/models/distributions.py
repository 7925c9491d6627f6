"""The distributions of TWM's latent and heads, as tfp.distributions objects.

Every loss and entropy of the agent comes from one of these: the latent z (32 independent one-hot
categoricals with a straight-through sample), the reward head (unit-variance Normal), the
discount head (Bernoulli over the discount target) and the policy (Categorical over actions).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from twm_tf.ops import gumbel

tfd = tfp.distributions


def _gumbel_max(logits: tf.Tensor, shape, seed, output_type=tf.int64) -> tf.Tensor:
    """argmax over the last axis of float32 logits plus Gumbel noise of `shape` (broadcasting)."""
    return tf.argmax(logits + gumbel.noise(shape, seed), axis=-1, output_type=output_type)


class GumbelMaxCategorical(tfd.Categorical):
    """A Categorical sampled with the Gumbel-max trick, XLA-compilable with int64 stateless seeds.

    `sample(seed=...)` needs a [2] int stateless seed.
    """

    def _sample_n(self, n, seed=None):
        logits = tf.cast(self.logits_parameter(), tf.float32)
        shape = tf.concat([[n], tf.shape(logits)], axis=0)
        return _gumbel_max(logits, shape, seed, output_type=self.dtype)


class StraightThroughOneHotCategorical(tfd.OneHotCategorical):
    """A one-hot categorical whose samples pass the class probabilities' gradient.

    Samples are Gumbel-max draws (see GumbelMaxCategorical), exactly one-hot in the forward pass;
    their gradient is that of the probabilities (Bengio et al. 2013), which is how TWM trains the
    encoder through sampled latents.
    `sample(seed=...)` needs a [2] int stateless seed.
    """

    def _sample_n(self, n, seed=None):
        logits = tf.cast(self.logits_parameter(), tf.float32)
        shape = tf.concat([[n], tf.shape(logits)], axis=0)
        sample = tf.one_hot(_gumbel_max(logits, shape, seed), logits.shape[-1], dtype=self.dtype)
        probs = tf.nn.softmax(logits)
        # probs - probs is exactly 0 forward, so the sample stays exactly one-hot.
        return sample + tf.cast(probs - tf.stop_gradient(probs), self.dtype)


def latent(logits: tf.Tensor) -> tfd.Distribution:
    """q(z|o) or p(z_hat|h) for logits [..., V, C]: V independent one-hot categoricals.

    Batch shape [...], event shape [V, C], float32 events; entropy() and cross_entropy() sum over
    the V variables.
    """
    logits = tf.cast(logits, tf.float32)
    return tfd.Independent(StraightThroughOneHotCategorical(logits=logits, dtype=tf.float32), 1)


def reward(mean: tf.Tensor) -> tfd.Distribution:
    """The reward head's unit-variance Normal around `mean` [...]."""
    return tfd.Normal(loc=mean, scale=tf.ones_like(mean))


def discount(logit: tf.Tensor) -> tfd.Distribution:
    """The discount head's Bernoulli for logit [...]; its mean is gamma_hat.

    log_prob also takes soft targets in [0, 1] (TWM's target is gamma * (1 - terminal)), for
    which it is the negated sigmoid cross-entropy.
    """
    return tfd.Bernoulli(logits=logit, dtype=tf.float32)


def policy(logits: tf.Tensor) -> tfd.Distribution:
    """pi(.|z) for logits [..., A]: a Categorical with int32 actions."""
    return GumbelMaxCategorical(logits=tf.cast(logits, tf.float32), dtype=tf.int32)


def sample_latent(logits: tf.Tensor, seed: tf.Tensor, straight_through: bool = True) -> tf.Tensor:
    """A one-hot sample [..., V, C] of latent(logits) with a [2] int seed.

    straight_through=False returns the same sample without the probabilities' gradient path,
    which saves a softmax and two passes where no gradient is taken (imagination).
    """
    if straight_through:
        return latent(logits).sample(seed=seed)
    logits = tf.cast(logits, tf.float32)
    classes = _gumbel_max(logits, tf.shape(logits), seed)
    return tf.one_hot(classes, logits.shape[-1], dtype=tf.float32)


def latent_mode(logits: tf.Tensor) -> tf.Tensor:
    """The one-hot argmax [..., V, C] float32 of latent(logits) (no gradient)."""
    return latent(logits).mode()


def latent_mode_classes(logits: tf.Tensor) -> tf.Tensor:
    """The classes [..., V] int32 of `latent_mode(logits)`, for `Actor.from_classes`."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def sample_actions(logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One action [...] int32 per row of logits [..., A], drawn from policy(logits)."""
    return policy(logits).sample(seed=seed)

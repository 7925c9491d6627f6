"""TWM's optimizer: Adam with global-norm clipping and a guard against non-finite updates.

Every network of TWM is trained by one of these (observation, dynamics, actor, critic). `apply`
clips, applies and reports the gradient norm; an update whose loss or gradient norm is not finite
is skipped entirely (weights, Adam moments and the step count stay as they were) and reported as
`<name>/skipped` = 1, so one bad batch cannot poison the weights. The training loop stops a run
whose updates keep being skipped (config.max_skipped_updates).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf import config as config_lib


class Optimizer:
    """One network's Adam (SPEC: eps 1e-5, decoupled weight decay) with clipping and the guard."""

    def __init__(self, name: str, learning_rate: float, clip: float, config: config_lib.Config):
        """Args:
        name: metric prefix, e.g. "critic" -> critic/grad_norm, critic/skipped.
        learning_rate: Adam's step size.
        clip: global-norm gradient clip.
        config: supplies adam_eps and weight_decay.
        """
        self.name = name
        self.adam = keras.optimizers.Adam(
            learning_rate=learning_rate,
            epsilon=config.adam_eps,
            weight_decay=config.weight_decay,
            global_clipnorm=clip,
            name=f"{name}_adam",
        )

    @property
    def variables(self) -> list:
        """Adam's state (step count, moments); checkpoints hold `adam` itself."""
        return self.adam.variables

    def build(self, variables) -> None:
        """Creates Adam's state for `variables` (before any tf.function or restore needs it)."""
        self.adam.build(variables)

    def apply(self, loss: tf.Tensor, grads, variables) -> dict[str, tf.Tensor]:
        """Applies `grads` to `variables` unless `loss` or the gradient norm is not finite.

        Returns:
            {<name>/grad_norm: the norm before clipping, <name>/skipped: 0. or 1.}
        """
        norm = tf.linalg.global_norm(grads)
        finite = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(tf.cast(loss, tf.float32))),
            tf.math.is_finite(norm),
        )

        def update():
            self.adam.apply_gradients(zip(grads, variables))
            return tf.constant(0.0)

        skipped = tf.cond(finite, update, lambda: tf.constant(1.0))
        return {f"{self.name}/grad_norm": norm, f"{self.name}/skipped": skipped}

    def minimize(self, loss_fn, variables) -> dict[str, tf.Tensor]:
        """Computes `loss_fn() -> (loss, metrics)` under a tape and applies its gradients.

        Returns:
            The metrics of `loss_fn` and of `apply`.
        """
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn()
        grads = tape.gradient(loss, variables)
        return {**metrics, **self.apply(loss, grads, variables)}


class Gradients(NamedTuple):
    """A loss and its gradients w.r.t. one network's trainable variables, not yet applied.

    Under tf.distribute each replica computes one; `apply` takes their cross-replica mean, so
    the clip and the non-finite guard see the gradient of the whole batch.
    """

    loss: tf.Tensor
    grads: list

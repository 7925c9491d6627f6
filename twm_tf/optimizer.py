"""TWM's optimizer: Adam in the form the paper's code trains with, global-norm clipping, a guard.

Every network of TWM is trained by one of these (observation, dynamics, actor, critic). `apply`
clips, applies and reports the gradient norm; an update whose loss or gradient norm is not finite
is skipped entirely (weights, Adam moments and the step count stay as they were) and reported as
`<name>/skipped` = 1, so one bad batch cannot poison the weights. The training loop stops a run
whose updates keep being skipped (config.max_skipped_updates).

The update is the authors' (torch.optim.Adam after torch's clip_grad_norm_), not Keras' Adam; the
two differ where it matters for few or rare updates (docs/parity.md):
- clipping scales by clip / (norm + 1e-6) when norm > clip;
- weight decay is an L2 term added to the clipped gradient before the moments (coupled), so a
  weight with a near-zero gradient is pulled towards zero by up to ~lr per step (Keras' decoupled
  decay moves it by lr x decay x weight);
- epsilon is added to sqrt(v_hat), the bias-corrected second moment (Keras adds it to sqrt(v),
  an effective epsilon of eps / sqrt(1 - beta2^t): 32x larger at step 1).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from twm_tf import config as config_lib


class TorchFormAdam(keras.optimizers.Adam):
    """Keras' Adam with torch.optim.Adam's epsilon placement and coupled L2 weight decay.

    Its variables (iterations, momentums, velocities) are Keras Adam's, so checkpoints written
    with `keras.optimizers.Adam` restore into it.
    """

    def __init__(self, l2: float, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = tf.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        # The bias corrections in float64, as torch computes them in Python floats: 0.999^t in
        # float32 makes every step ~6e-6 shorter.
        step = tf.cast(self.iterations + 1, tf.float64)
        correction1 = 1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), step)
        correction2 = tf.sqrt(1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), step))
        step_size = tf.cast(tf.cast(learning_rate, tf.float64) * correction2 / correction1, dtype)
        epsilon = tf.cast(self.epsilon * correction2, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1.0 - self.beta_2))
        # m_hat / (sqrt(v_hat) + eps) with the corrections folded into the step size.
        self.assign_sub(variable, step_size * m / (tf.sqrt(v) + epsilon))


class Optimizer:
    """One network's Adam (docs/spec.md, "Optimizers") with clipping and the guard."""

    def __init__(self, name: str, learning_rate: float, clip: float, config: config_lib.Config):
        """Args:
        name: metric prefix, e.g. "critic" -> critic/grad_norm, critic/skipped.
        learning_rate: Adam's step size.
        clip: global-norm gradient clip.
        config: supplies adam_eps and weight_decay.
        """
        self.name = name
        self.clip = clip
        self.adam = TorchFormAdam(
            l2=config.weight_decay,
            learning_rate=learning_rate,
            epsilon=config.adam_eps,
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
        # Dense, as torch's: an embedding's IndexedSlices hold repeated rows apart, which would
        # miscount the norm, and the L2 term and the moments' decay must reach every row.
        grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        norm = tf.linalg.global_norm(grads)
        finite = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(tf.cast(loss, tf.float32))),
            tf.math.is_finite(norm),
        )

        def update():
            scale = tf.minimum(1.0, self.clip / (norm + 1e-6))
            clipped = [None if g is None else g * scale for g in grads]
            self.adam.apply_gradients(zip(clipped, variables))
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

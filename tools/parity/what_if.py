"""compare.py with proposed fixes of twm_tf/optimizer.py patched in, to measure them first.

    .venv/bin/python -m tools.parity.what_if --fix=dense_norm --fix=float64_corrections \
        --case=/tmp/parity/atari100k --name=atari100k-fixed

Fixes (README "Known differences"; each replaces one function in this process only):
  dense_norm            Optimizer.apply densifies IndexedSlices gradients before the global norm.
  float64_corrections   TorchFormAdam.update_step computes Adam's bias corrections in float64.
"""

import json
import os

import tensorflow as tf
from absl import app
from absl import flags

from tools.parity import compare
from twm_tf import optimizer

_FIX = flags.DEFINE_multi_enum(
    "fix", [], ["dense_norm", "float64_corrections"], "Proposed fixes to patch in."
)


def _dense_norm():
    apply = optimizer.Optimizer.apply

    def dense_apply(self, loss, grads, variables):
        grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        return apply(self, loss, grads, variables)

    optimizer.Optimizer.apply = dense_apply


def _float64_corrections():
    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = tf.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        step = tf.cast(self.iterations + 1, tf.float64)
        correction1 = 1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), step)
        correction2 = 1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1.0 - self.beta_2))
        epsilon = tf.cast(self.epsilon * tf.sqrt(correction2), dtype)
        size = tf.cast(learning_rate, tf.float64) * tf.sqrt(correction2) / correction1
        self.assign_sub(variable, tf.cast(size, dtype) * m / (tf.sqrt(v) + epsilon))

    optimizer.TorchFormAdam.update_step = update_step


def main(argv):
    for fix in _FIX.value:
        {"dense_norm": _dense_norm, "float64_corrections": _float64_corrections}[fix]()
    try:
        compare.main(argv)
    finally:  # compare.main exits with the verdict; the report names the fixes it ran with
        path = os.path.join(flags.FLAGS.out_dir, f"one_update-{flags.FLAGS.name}.json")
        with open(path) as f:
            report = json.load(f)
        with open(path, "w") as f:
            json.dump({"what_if_fixes": _FIX.value, **report}, f, indent=1)


if __name__ == "__main__":
    app.run(main)

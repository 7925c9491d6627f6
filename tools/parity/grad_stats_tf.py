"""twm-tf's side of the gradient-moment comparison (grad_stats.py).

    python -m tools.parity.grad_stats_tf --dataset=/data/boxing-25k.npz \
        --weights=/data/trained-wm-0.npz --batches=900,950 --draws=64 --out=/data/grads-tf.npz

Loads --weights (twm-tf's layout), and for each --batches entry u (plan.py's world-model windows
of update u) computes `WorldModel.gradients` --draws times, each with a fresh latent seed and
fresh dropout masks, without applying them; writes the gradients' moments (grad_stats.Moments).
"""

from absl import app
from absl import flags
import tensorflow as tf

from tools.parity import case as case_lib
from tools.parity import dataset as dataset_lib
from tools.parity import grad_stats
from tools.parity import plan as plan_lib
from tools.parity import tf_inputs
from tools.parity import twm_update
from twm_tf import learner as learner_lib

_DATASET = flags.DEFINE_string("dataset", None, "Recorded steps (record_dataset.py).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights, weights/<model>/<path>.")
_BATCHES = flags.DEFINE_list("batches", ["900", "950"], "Plan updates whose windows to use.")
_DRAWS = flags.DEFINE_integer("draws", 64, "Gradient computations per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the latent and dropout draws.")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.")
for _flag in ("dataset", "weights", "out"):
    flags.mark_flag_as_required(_flag)


def main(argv):
    del argv
    config = case_lib.config_for("small", seed=_SEED.value)
    data = dataset_lib.load(_DATASET.value)
    batches = [int(b) for b in _BATCHES.value]
    plan = plan_lib.Plan(data, config, max(batches) + 1, 0)
    learner = learner_lib.Learner(config, int(data.actions.max()) + 1)
    tf_inputs.load_weights(learner, _WEIGHTS.value)
    wm = learner.world_model

    @tf.function
    def gradients(batch, seed):
        grads, _, _ = wm.gradients(batch, seed)
        return grads.observation.grads, grads.dynamics.grads

    moments = grad_stats.Moments()
    for batch_index in batches:
        batch = tf_inputs.to_batch(plan.wm_windows(batch_index))
        for _ in range(_DRAWS.value):
            draw = {}
            for model, net, grads in zip(
                ("observation", "dynamics"),
                (wm.observation, wm.dynamics),
                gradients(batch, learner.seed()),
            ):
                for path, grad in twm_update.gradients_by_path(net, grads).items():
                    draw[f"{model}/{path}"] = grad
            moments.add(batch_index, draw)
    moments.save(_OUT.value)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)

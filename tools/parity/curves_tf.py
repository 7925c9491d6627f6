"""twm-tf's side of the many-update comparison: world-model updates, then actor-critic updates.

    python -m tools.parity.curves_tf --dataset=/data/boxing-25k.npz --init=/data/init-small.npz \
        --seed=0 --out=/data/curves/twm_tf-0.npz

From the weights in --init (twm-tf's layout, `weights/<model>/<path>` as case.npz holds them) and
the recorded steps of --dataset (dataset.py), it runs --wm_updates world-model updates on the
planned windows (plan.py: the same windows, in the same order, as the original's side), then
--ac_updates actor-critic updates on imagination from the frozen world model. Dropout is on and
every latent, dropout and policy draw comes from --seed: the seeds' spread is the yardstick the
two codes' curves are compared against. Every --eval_every world-model updates the losses of the
held-out windows (eval mode, a fixed seed) are logged too.

The output holds one array per logged term (terms.py names them the same for both codes):
    wm/<term> [wm_updates], heldout/<term> [evals], heldout_step [evals], ac/<term> [ac_updates]
"""

from absl import app
from absl import flags
import tensorflow as tf

from tools.parity import ablations
from tools.parity import case as case_lib
from tools.parity import dataset as dataset_lib
from tools.parity import layout
from tools.parity import plan as plan_lib
from tools.parity import terms
from tools.parity import tf_inputs
from twm_tf import learner as learner_lib
from twm_tf.run import checkpoint

_DATASET = flags.DEFINE_string("dataset", None, "Recorded steps (record_dataset.py).")
_INIT = flags.DEFINE_string("init", None, "Initial weights, weights/<model>/<path>.")
_SIZE = flags.DEFINE_enum("size", "small", sorted(case_lib.SIZES), "Model sizes.")
_WM_UPDATES = flags.DEFINE_integer("wm_updates", 1000, "World-model updates.")
_AC_UPDATES = flags.DEFINE_integer("ac_updates", 1000, "Actor-critic updates.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 100, "World-model updates between evals.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of dropout, latent and policy draws.")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.")
_ABLATION = flags.DEFINE_enum(
    "ablation", "none", ablations.NAMES, "Another sampler for one of the draws (ablations.py)."
)
_SAVE_WEIGHTS = flags.DEFINE_string(
    "save_weights",
    None,
    "Also write every weight after the world-model phase here, in --init's format: the start of "
    "an actor-critic phase on one shared trained world model (--wm_updates=0 in both codes).",
)
for _flag in ("dataset", "init", "out"):
    flags.mark_flag_as_required(_flag)


def save_weights(learner: learner_lib.Learner, init: str, path: str) -> None:
    """Writes `init`'s file with every trainable variable replaced by the learner's value."""
    trained = {
        f"weights/{name}/{key}": variable.numpy()
        for name, model in learner.models.items()
        for key, variable in checkpoint.variables_by_path(model).items()
        if variable.trainable
    }
    layout.write_weights(init, path, trained)


def main(argv):
    del argv
    with ablations.applied(_ABLATION.value):
        run()


def run():
    """The flags' run: writes --out."""
    config = case_lib.config_for(_SIZE.value, seed=_SEED.value)
    data = dataset_lib.load(_DATASET.value)
    plan = plan_lib.Plan(data, config, _WM_UPDATES.value, _AC_UPDATES.value)
    learner = learner_lib.Learner(config, int(data.actions.max()) + 1)
    tf_inputs.load_weights(learner, _INIT.value)
    wm, ac = learner.world_model, learner.actor_critic

    wm_step = tf.function(lambda batch, seed: wm.train_step(batch, seed)[0])
    heldout = tf.function(lambda batch, seed: wm.losses(batch, seed, training=False)[2])

    @tf.function
    def ac_step(batch, restart_obs, seed):
        latent_seed, rollout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        _, _, _, latents = wm.losses(batch, latent_seed, training=False)
        gradients, metrics = learner.actor_critic_gradients(latents, restart_obs, rollout_seed)
        metrics.update(ac.apply(gradients))
        return metrics

    log = terms.Log()
    log.series["heldout_starts"] = list(plan.heldout_starts)  # curves_compare checks they match
    heldout_batch = tf_inputs.to_batch(plan.heldout_windows())
    heldout_seed = tf.constant([12345, 0], tf.int64)
    for update in range(_WM_UPDATES.value):
        if update % _EVAL_EVERY.value == 0:
            log.add_heldout(update, terms.from_twm_tf(heldout(heldout_batch, heldout_seed)))
        log.add(
            "wm",
            terms.from_twm_tf(wm_step(tf_inputs.to_batch(plan.wm_windows(update)), learner.seed())),
        )
    log.add_heldout(_WM_UPDATES.value, terms.from_twm_tf(heldout(heldout_batch, heldout_seed)))
    if _SAVE_WEIGHTS.value:
        save_weights(learner, _INIT.value, _SAVE_WEIGHTS.value)
    for update in range(_AC_UPDATES.value):
        windows, restart_obs = plan.ac_inputs(update)
        log.add(
            "ac",
            terms.from_twm_tf(ac_step(tf_inputs.to_batch(windows), restart_obs, learner.seed())),
        )
    log.save(_OUT.value)


if __name__ == "__main__":
    app.run(main)

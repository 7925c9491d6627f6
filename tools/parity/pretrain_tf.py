"""twm-tf's side of the pretraining comparison: VAE, dynamics and actor-critic pretraining.

    python -m tools.parity.pretrain_tf --dataset=/data/boxing-25k.npz \
        --init=/data/init-small.npz --ac_share=0.7 --seed=0 --out=/data/pretrain/twm_tf-0.npz

From the weights in --init (twm-tf's layout, as tf_inputs.py reads them) it runs the three
pretraining phases on the batches pretrain_plan.py draws from the dataset's first --prefill steps,
each update with the learner's own compiled step (the ones `Learner.pretrain_vae`,
`pretrain_dynamics` and `pretrain_actor_critic` run after drawing from the replay buffer): VAE on
single observations, dynamics on windows with the VAE frozen, then the critic on real returns with
an entropy-only actor. Every latent and dropout draw comes from --seed, the held-out latents too
(one draw per run, the same at every evaluation): unlike curves_tf's fixed held-out draw, the
seeds' spread of a held-out term then includes the draw's noise, which the two codes cannot share.

Logged (pretrain_plan.py names them the same for both codes, in twm-tf's units):
    pre_obs/<term>, pre_dyn/<term>, pre_ac/<term>   every update
    end_obs/<term>, end_dyn/<term>                  the world-model terms of plan.py's held-out
                                                    windows (eval mode)
    heldout_ac/<term>, heldout_ac_step              the critic on held-out windows after the
                                                    actor-critic updates of `ac_eval_points`
    end_ac/<term>                                   the same after the last update
    seconds/<phase>                                 wall time of every update
"""

import functools
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tools.parity import case as case_lib
from tools.parity import dataset as dataset_lib
from tools.parity import pretrain_plan
from tools.parity import terms
from tools.parity import tf_inputs
from twm_tf import learner as learner_lib

_DATASET = flags.DEFINE_string("dataset", None, "Recorded steps (record_dataset.py).")
_INIT = flags.DEFINE_string("init", None, "Initial weights, weights/<model>/<path>.")
_SIZE = flags.DEFINE_enum("size", "small", sorted(case_lib.SIZES), "Model sizes.")
_PREFILL = flags.DEFINE_integer("prefill", pretrain_plan.PREFILL_STEPS, "Steps trained on.")
_AC_SHARE = flags.DEFINE_float(
    "ac_share",
    pretrain_plan.DEFAULT_AC_SHARE,
    "Actor-critic share of the pretraining budget: 0.1 twm-tf's, 0.7 the original as released.",
)
_BUDGET_SCALE = flags.DEFINE_float("budget_scale", 1.0, "Multiplies the pretraining budget.")
_AC_EVAL_EVERY = flags.DEFINE_integer("ac_eval_every", 25, "AC updates between held-out evals.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of dropout and latent draws.")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.")
for _flag in ("dataset", "init", "out"):
    flags.mark_flag_as_required(_flag)

_HELDOUT_SEED = 12345  # with --seed: one draw of the held-out latents per run, at every eval


def heldout_functions(learner: learner_lib.Learner):
    """(world-model terms of windows, critic terms of actor-critic windows), both compiled."""
    wm, ac = learner.world_model, learner.actor_critic

    @tf.function
    def world_model_terms(batch, seed):
        return wm.losses(batch, seed, training=False)[2]

    @tf.function
    def critic_terms(batch, returns, seed):
        inputs = learner.real_sequences(batch, seed)  # the learner's pretraining inputs
        _, metrics = ac.gradients(**inputs, actions=None, entropy_only=True)
        # [B, H] against the real discounted returns
        errors = ac.critic(inputs["z"][:, :-1]) - returns
        metrics["mc_abs_error"] = tf.reduce_mean(tf.abs(errors))
        metrics["mc_sq_error"] = tf.reduce_mean(0.5 * tf.square(errors))
        return metrics

    return world_model_terms, critic_terms


def evaluate_critic(log, critic_terms, batch, returns, seed, update: int) -> dict[str, float]:
    """Logs the held-out critic terms after `update` actor-critic updates; returns them."""
    values = pretrain_plan.ac_terms_from_twm_tf(critic_terms(batch, returns, seed))
    log.add("heldout_ac", values)
    log.series.setdefault("heldout_ac_step", []).append(update)
    return values


def main(argv):
    del argv
    config = case_lib.config_for(_SIZE.value, seed=_SEED.value)
    data = dataset_lib.load(_DATASET.value)
    plan = pretrain_plan.PretrainPlan(
        data, config, _PREFILL.value, _AC_SHARE.value, _BUDGET_SCALE.value
    )
    learner = learner_lib.Learner(config, int(data.actions.max()) + 1)
    tf_inputs.load_weights(learner, _INIT.value)
    world_model_terms, critic_terms = heldout_functions(learner)
    heldout_seed = tf.constant([_HELDOUT_SEED, _SEED.value], tf.int64)
    heldout = tf_inputs.to_batch(plan.heldout_windows())
    ac_windows, ac_returns = plan.heldout_ac_windows()
    heldout_ac, heldout_returns = tf_inputs.to_batch(ac_windows), tf.constant(ac_returns)

    log = terms.Log()
    log.series.update(ac_share=[plan.ac_share], updates=list(plan.updates))
    log.series["default_share_ac_updates"] = [plan.default_share_ac_updates]
    steps = {  # The learner's compiled pretraining steps and their planned inputs.
        "obs": (learner._pretrain_obs, lambda u: tf.constant(plan.obs_batch(u))),
        "dyn": (learner._pretrain_dyn, lambda u: tf_inputs.to_batch(plan.dyn_windows(u))),
        "ac": (learner._pretrain_ac, lambda u: tf_inputs.to_batch(plan.ac_windows(u))),
    }
    evaluate = functools.partial(
        evaluate_critic, log, critic_terms, heldout_ac, heldout_returns, heldout_seed
    )
    eval_points = plan.ac_eval_points(_AC_EVAL_EVERY.value)
    logging.info("updates %s, held-out AC evals after %s", plan.updates, eval_points)
    for phase, count in zip(pretrain_plan.PHASES, plan.updates):
        step, inputs = steps[phase]
        for update in range(count):
            if phase == "ac" and update in eval_points:
                evaluate(update)
            start = time.perf_counter()  # the batch's gathering included, as the original's
            metrics = {k: v.numpy() for k, v in step(inputs(update), learner.seed()).items()}
            log.series.setdefault(f"seconds/{phase}", []).append(time.perf_counter() - start)
            if phase == "ac":
                log.add("pre_ac", pretrain_plan.ac_terms_from_twm_tf(metrics))
            else:
                log.add(f"pre_{phase}", terms.from_twm_tf(metrics))
            if (update + 1) % 50 == 0 or update + 1 == count:
                seconds = np.median(log.series[f"seconds/{phase}"])
                logging.info("%s %d/%d %.2f s/update", phase, update + 1, count, seconds)
        if phase == "ac":
            log.add("end_ac", evaluate(count))
        else:
            log.add(f"end_{phase}", terms.from_twm_tf(world_model_terms(heldout, heldout_seed)))
    log.save(_OUT.value)
    logging.info("wrote %s", _OUT.value)


if __name__ == "__main__":
    app.run(main)

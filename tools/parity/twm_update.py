"""twm-tf's side of a parity case: one update of each of the four optimizers, eagerly.

The composition is `Learner._train_step`'s on one replica: the world-model gradients and their
application (dynamics, then observation), imagination from the updated world model, then the
critic and the actor. Two things come from the case instead of twm-tf's own streams: every
Gumbel draw and dropout mask (draws.py), and the imagination starts (case.starts, in the
original's convention, README "Known differences"). Everything runs eagerly so that the draws
can be injected.

Results are keyed in twm-tf's layout, the same keys as the torch side writes:

    <model>/grad/<path>         gradient before clipping (dense)
    <model>/grad_norm           global norm before clipping, []
    <model>/weight/<path>       weight after the step
    <model>/exp_avg/<path>      Adam's first moment after the step
    <model>/exp_avg_sq/<path>   Adam's second moment after the step
    imagination/<field>         the imagined trajectory: z [M, H+1, V, C], actions, rewards,
                                discounts, dones, weights [M, H]
"""

import numpy as np
import tensorflow as tf

from tools.parity import case as case_lib
from tools.parity import draws as draws_lib
from twm_tf import imagination
from twm_tf import learner as learner_lib
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic
from twm_tf.models import returns as returns_lib
from twm_tf.run import checkpoint

# The optimizer of each model and the prefix of its metrics.
OPTIMIZERS = {
    "observation": ("obs_optimizer", "obs"),
    "dynamics": ("dyn_optimizer", "dyn"),
    "actor": ("actor_optimizer", "actor"),
    "critic": ("critic_optimizer", "critic"),
}


def build(case: case_lib.Case):
    """The world model and actor-critic of a case, holding its initial weights.

    Returns:
      (WorldModel, ActorCritic, {model name: Keras model}).
    """
    wm = world_model_lib.WorldModel(case.config, case.num_actions)
    wm.build()
    ac = actor_critic.ActorCritic(case.config, case.num_actions)
    models, _ = learner_lib.parts(wm, ac)
    expected = set()
    for name, model in models.items():
        for path, variable in checkpoint.variables_by_path(model).items():
            if variable.trainable:
                variable.assign(case.weights[f"{name}/{path}"])
                expected.add(f"{name}/{path}")
    if unknown := sorted(set(case.weights) - expected):
        raise ValueError(f"case weights that no twm-tf variable has: {unknown}")
    return wm, ac, models


def initial_weights(config, num_actions: int, seed: int = 0) -> dict:
    """Freshly initialized twm-tf weights ("<model>/<path>" -> array), as a Learner builds them."""
    from twm_tf import seeding  # Only case creation needs it.

    with seeding.keras_weights(seed):
        wm = world_model_lib.WorldModel(config, num_actions)
        wm.build()
        ac = actor_critic.ActorCritic(config, num_actions)
    models, _ = learner_lib.parts(wm, ac)
    return {
        f"{name}/{path}": variable.numpy()
        for name, model in models.items()
        for path, variable in checkpoint.variables_by_path(model).items()
        if variable.trainable
    }


def starts_from(latents: world_model_lib.Latents, flat: np.ndarray, seq_len: int):
    """The original's starts: window n's step k as context and z_{k+1}, flat = n * seq_len + k."""
    row, step = flat // seq_len, flat % seq_len
    context = tf.constant(np.stack([row, step], axis=-1), tf.int32)
    start = tf.constant(np.stack([row, step + 1], axis=-1), tf.int32)
    return imagination.Starts(
        context_z=tf.gather_nd(latents.z, context),
        context_action=tf.gather_nd(latents.actions, context),
        context_reward=tf.gather_nd(latents.rewards, context),
        context_done=tf.gather_nd(latents.dones, context),
        start_z=tf.gather_nd(latents.z, start),
    )


def gradients_by_path(model, gradients) -> dict[str, np.ndarray]:
    """model.trainable_variables' gradients as dense NumPy arrays, keyed by checkpoint path."""
    paths = {id(v): path for path, v in checkpoint.variables_by_path(model).items()}
    return {
        # tf.convert_to_tensor: the action embedding's gradient is IndexedSlices.
        paths[id(v)]: tf.convert_to_tensor(g).numpy()
        for v, g in zip(model.trainable_variables, gradients)
    }


def run(case: case_lib.Case, draws: draws_lib.Draws) -> dict[str, np.ndarray]:
    """One update of all four optimizers on `case` with `draws`; returns the results by key."""
    config = case.config
    wm, ac, models = build(case)
    batch = world_model_lib.Batch(*(tf.constant(x) for x in case.batch))
    results = {}
    with draws.inject(wm.dynamics):
        wm_grads, _, latents = wm.gradients(batch, tf.constant(case.wm_seed))
        metrics = wm.apply(wm_grads)
        starts = starts_from(latents, case.starts, config.seq_len)
        restart_obs = tf.constant(case.restart_obs)
        encode = draws.encode(wm.observation.encode)
        trajectory, ac_grads, _ = imagination.rollout_and_gradients(
            wm.dynamics, ac, starts, restart_obs, encode, tf.constant(case.rollout_seed), config
        )
        metrics.update(ac.apply(ac_grads))
    gradients = {
        "observation": wm_grads.observation.grads,
        "dynamics": wm_grads.dynamics.grads,
        "actor": ac_grads.actor.grads,
        "critic": ac_grads.critic.grads,
    }
    owners = {"observation": wm, "dynamics": wm, "actor": ac, "critic": ac}
    for name, model in models.items():
        attribute, prefix = OPTIMIZERS[name]
        adam = getattr(owners[name], attribute).adam
        results[f"{name}/grad_norm"] = metrics[f"{prefix}/grad_norm"].numpy()
        grads = gradients_by_path(model, gradients[name])
        for path, variable in checkpoint.variables_by_path(model).items():
            if not variable.trainable:
                continue
            index = adam._get_variable_index(variable)
            results[f"{name}/grad/{path}"] = grads[path]
            results[f"{name}/weight/{path}"] = variable.numpy()
            results[f"{name}/exp_avg/{path}"] = adam._momentums[index].numpy()
            results[f"{name}/exp_avg_sq/{path}"] = adam._velocities[index].numpy()
    weights = returns_lib.discount_weights(trajectory.discounts, trajectory.restarts)
    for field in ("z", "actions", "rewards", "discounts", "dones"):
        results[f"imagination/{field}"] = getattr(trajectory, field).numpy()
    results["imagination/weights"] = weights.numpy()
    return results

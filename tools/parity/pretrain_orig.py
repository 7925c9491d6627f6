"""The original TWM's side of the pretraining comparison: pretrain_tf.py's run, in PyTorch.

    /tmp/peer-venv/bin/python -m tools.parity.pretrain_orig \
        --config=/data/config-small/config.json --dataset=/data/boxing-25k.npz \
        --init=/data/init-small.npz --ac_share=0.7 --seed=0 \
        --orig_dir=/work/shared/peer/twm_orig/twm --shims=/work/shared/peer/shims.py \
        --out=/data/pretrain/orig-0.npz

Runs in the torch venv. It builds the original's models at --config's sizes, loads --init and
seeds torch with --seed (curves_orig.py's setup), then runs the body of `Trainer._pretrain` on the
batches of pretrain_plan.py instead of the replay buffer's draws:

* `WorldModel.optimize_pretrain_obs` on o [B, 1, S, 64, 64];
* `WorldModel.optimize_pretrain_dyn` on z_0..z_l (samples of the eval-mode encoder, as
  `_pretrain` draws them from its once-encoded z_dist), a, tanh r, terminated, truncated of steps
  0..l and the target logits of steps 2..l+1 of each window;
* `ActorCritic.optimize_pretrain` on z_0..z_H of each window and r, g = gamma (1 - d), d of
  steps 0..H-1, as `_pretrain` slices them; then `ActorCritic.sync_target`.

Held out, the world model is measured with curves_orig.heldout_metrics and the critic with the
original's `_compute_targets` and `_compute_critic_loss`, their latents drawn from one seed per run
(HELDOUT_SEED + --seed, the same at every evaluation) under `torch.random.fork_rng`, so the
training stream is untouched.

Adapters (curves_orig.Adapters, README "Adapters"): the next-latent term is trained
(`optimize_pretrain_dyn` calls the same `predict` and `compute_dynamics_loss` as `optimize`), and
the held-out consistency term leaves out the steps after an episode end. No pretraining update
trains the consistency term, so that adapter changes only the held-out `consistency`. Both are on
unless --no_latent_loss / --no_consistency_mask. The output has pretrain_tf.py's names and units
(pretrain_plan.py, terms.from_original).
"""

import argparse
import time

import numpy as np
import torch
import torch.distributions as D

from tools.parity import curves_orig
from tools.parity import dataset as dataset_lib
from tools.parity import pretrain_plan
from tools.parity import terms
from tools.parity import torch_side

HELDOUT_SEED = curves_orig.HELDOUT_SEED  # + --seed: one held-out draw per run (pretrain_tf)


def _floats(metrics: dict) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


@torch.no_grad()
def _encode_sample(wm, o: torch.Tensor, return_logits: bool = False):
    """Samples of the eval-mode encoder, as `_pretrain` draws them from its z_dist."""
    obs_model = wm.obs_model.eval()
    return obs_model.sample_z(obs_model.encode(o), return_logits=return_logits)


def dyn_update(modules, wm, windows: dict) -> dict:
    """One `optimize_pretrain_dyn` on windows [N, l+2]: context, l trained steps, last target."""
    o, a, r, terminated, truncated = curves_orig.window_inputs(modules, windows)
    z, logits = _encode_sample(wm, o, return_logits=True)  # [N, l+2, V C], [N, l+2, V, C]
    return wm.optimize_pretrain_dyn(z[:, :-1], a, r, terminated, truncated, logits[:, 2:])


def ac_inputs(modules, wm, windows: dict):
    """Windows [M, H+1] -> optimize_pretrain's z [M, H+1], h (None), r, g, d [M, H]."""
    o = torch_side._observations(modules, windows["frames"])
    z = _encode_sample(wm, o)
    r, terminated, truncated = (
        torch.as_tensor(windows[name][:, :-1]) for name in ("rewards", "terminated", "truncated")
    )
    r = torch.tanh(r.to(torch.get_default_dtype()))  # as the replay buffer stores them
    d = torch.logical_or(terminated, truncated)
    return z, None, r, wm.to_discounts(d), d


@torch.no_grad()
def critic_metrics(wm, ac, modules, windows: dict, returns: np.ndarray) -> dict:
    """The critic on held-out windows: optimize_pretrain's loss, entropy and real-return errors."""
    z, h, r, g, d = ac_inputs(modules, wm, windows)
    x = ac._prepare_inputs(z, h)
    targets, _ = ac._compute_targets(x, r, g, d)  # sets eval mode
    values = ac.critic(x[:, :-1])
    _, metrics = ac._compute_critic_loss(values, targets, torch.ones_like(targets))
    metrics["ent"] = D.Categorical(logits=ac.actor(x[:, :-1])).entropy().mean()
    errors = values - torch.as_tensor(returns, dtype=values.dtype)
    metrics["mc_abs_error"] = errors.abs().mean()
    metrics["mc_sq_error"] = (0.5 * errors.square()).mean()
    return _floats(metrics)


def run(modules: dict, config: dict, args) -> terms.Log:
    """pretrain_tf's run with the original; returns its Log."""
    data = dataset_lib.load(args.dataset)
    plan = pretrain_plan.PretrainPlan(
        data, argparse.Namespace(**config), args.prefill, args.ac_share, args.budget_scale
    )
    torch.manual_seed(args.seed)
    settings, wm, ac = torch_side.build_original(modules, config, int(data.actions.max()) + 1)
    curves_orig.load_init(wm, ac, config, args.init)
    adapters = curves_orig.Adapters(modules, not args.no_latent_loss, not args.no_consistency_mask)
    pixels = config["frame_stack"] * config["frame_size"] ** 2
    seq_len = config["seq_len"]
    print(f"updates {plan.updates}", flush=True)

    log = terms.Log()
    log.series.update(ac_share=[plan.ac_share], updates=list(plan.updates))
    log.series["default_share_ac_updates"] = [plan.default_share_ac_updates]
    heldout = curves_orig.window_inputs(modules, plan.heldout_windows())
    heldout_ac, heldout_returns = plan.heldout_ac_windows()

    def world_model_terms():
        adapters.set_mask((heldout[3] | heldout[4])[:, :seq_len])
        with torch.random.fork_rng():
            torch.manual_seed(HELDOUT_SEED + args.seed)
            metrics = curves_orig.heldout_metrics(wm, *heldout)
        return terms.from_original(_floats(metrics), settings, pixels)

    def evaluate_critic(update):
        with torch.random.fork_rng():
            torch.manual_seed(HELDOUT_SEED + args.seed)
            metrics = critic_metrics(wm, ac, modules, heldout_ac, heldout_returns)
        values = pretrain_plan.ac_terms_from_original(metrics)
        log.add("heldout_ac", values)
        log.series.setdefault("heldout_ac_step", []).append(update)
        return values

    steps = {
        "obs": lambda u: wm.optimize_pretrain_obs(
            torch_side._observations(modules, plan.obs_batch(u)).unsqueeze(1)
        ),
        "dyn": lambda u: dyn_update(modules, wm, plan.dyn_windows(u)),
        "ac": lambda u: ac.optimize_pretrain(*ac_inputs(modules, wm, plan.ac_windows(u))),
    }
    eval_points = plan.ac_eval_points(args.ac_eval_every)
    with adapters.installed():
        for phase, count in zip(pretrain_plan.PHASES, plan.updates):
            for update in range(count):
                if phase == "ac" and update in eval_points:
                    evaluate_critic(update)
                start = time.perf_counter()
                metrics = _floats(steps[phase](update))
                log.series.setdefault(f"seconds/{phase}", []).append(time.perf_counter() - start)
                if phase == "ac":
                    log.add("pre_ac", pretrain_plan.ac_terms_from_original(metrics))
                else:
                    log.add(f"pre_{phase}", terms.from_original(metrics, settings, pixels))
                curves_orig.progress(
                    f"pre_{phase}/", update, count, np.median(log.series[f"seconds/{phase}"]), log
                )
            if phase == "ac":
                ac.sync_target()
                log.add("end_ac", evaluate_critic(count))
            else:
                log.add(f"end_{phase}", world_model_terms())
    return log


def main():
    parser = curves_orig.common_parser(__doc__.split("\n")[0])
    parser.add_argument("--prefill", type=int, default=pretrain_plan.PREFILL_STEPS)
    parser.add_argument(
        "--ac_share",
        type=float,
        default=pretrain_plan.DEFAULT_AC_SHARE,
        help="actor-critic share of the budget: 0.1 twm-tf's, 0.7 the original as released",
    )
    parser.add_argument("--budget_scale", type=float, default=1.0, help="multiplies the budget")
    parser.add_argument("--ac_eval_every", type=int, default=25)
    curves_orig.execute(run, parser.parse_args())


if __name__ == "__main__":
    main()

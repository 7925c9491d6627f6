"""The original TWM's side of the many-update comparison: curves_tf.py's run, in PyTorch.

    /tmp/peer-venv/bin/python -m tools.parity.curves_orig --config=/data/config-small/config.json \
        --dataset=/data/boxing-25k.npz --init=/data/init-small.npz --seed=0 \
        --orig_dir=/work/shared/peer/twm_orig/twm --shims=/work/shared/peer/shims.py \
        --out=/data/curves/orig-0.npz

Runs in the torch venv (NumPy modules of tools/parity only). --config is twm-tf's resolved config
of the size (`Config.save`, README "Many updates"). It builds the original's WorldModel and
ActorCritic at those sizes (torch_side.build_original), loads --init (layout.py), seeds torch
with --seed and, on plan.py's windows in curves_tf's order:

* --wm_updates times `WorldModel.optimize` (dropout on), on o [N, l+2] and a, tanh r,
  terminated, truncated [N, l+1] as `Trainer._train_step` builds them;
* every --eval_every updates and at the end, the held-out windows' terms in eval mode without an
  update, from the original's encode/sample_z/decode/predict and compute_* functions (a fixed
  seed, as curves_tf's fixed held-out seed);
* --ac_updates times imagination from the frozen world model as `Trainer._train_step` runs it
  (its own uniform choice of the M start pairs; restarts encode a uniformly drawn row of the
  plan's restart observations) and `ActorCritic.optimize`. As curves_tf, the start latents are
  samples of the eval-mode encoder (no dropout either way: the original's VAE has none).

The two adapters of the one-update comparison are on (README, Adapters): the next-latent term is
trained and the consistency term leaves out the first step after an episode end. Each term is
mapped to terms.py's name in twm-tf's units (terms.ORIGINAL, terms.from_original).
"""

import argparse
import contextlib
import json
import time

import numpy as np
import torch

from tools.parity import dataset as dataset_lib
from tools.parity import layout
from tools.parity import plan as plan_lib
from tools.parity import terms
from tools.parity import torch_side

HELDOUT_SEED = 12345  # one draw of the held-out latents for every eval, as curves_tf


class Adapters:
    """twm-tf's documented choices applied to the original at run time (README, Adapters).

    `latent_loss` lets `compute_dynamics_loss` include its next-latent term; `consistency_mask`
    averages the consistency cross-entropy over the steps set with `set_mask` (those with a
    prediction) and reports that mean as the original's metric `enc_prior_ce`.
    """

    def __init__(self, modules: dict, latent_loss: bool = True, consistency_mask: bool = True):
        self.world_model = modules["world_model"]
        self.latent_loss, self.consistency_mask = latent_loss, consistency_mask
        self.mask = None  # [N, l] float

    def set_mask(self, done: torch.Tensor) -> None:
        """done: [N, l] bool, an episode ended before the trained step."""
        self.mask = (~done).to(torch.get_default_dtype())

    @contextlib.contextmanager
    def installed(self):
        models = self.world_model
        predict = models.DynamicsModel.predict
        consistency = models.ObservationModel.compute_consistency_loss
        adapters = self

        def patched_predict(self, *args, **kwargs):
            outputs = predict(self, *args, **kwargs)
            if adapters.latent_loss and "z_dist" in outputs[0]:
                outputs[0]["z"] = None  # compute_dynamics_loss tests `'z' in preds`
            return outputs

        def patched_consistency(self, z_logits, z_hat_probs):
            if not adapters.consistency_mask:
                return consistency(self, z_logits, z_hat_probs)
            cross_entropy = -(z_hat_probs.detach() * z_logits).sum(-1).sum(-1)  # [N, l]
            mask = adapters.mask
            mean = (mask * cross_entropy).sum() / mask.sum().clamp(min=1)
            return self.config["obs_consistency_coef"] * mean, {"enc_prior_ce": mean.detach()}

        models.DynamicsModel.predict = patched_predict
        models.ObservationModel.compute_consistency_loss = patched_consistency
        try:
            yield self
        finally:
            models.DynamicsModel.predict = predict
            models.ObservationModel.compute_consistency_loss = consistency


def _floats(metrics: dict) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def window_inputs(modules: dict, windows: dict):
    """plan.py's windows [N, l+2] -> what Trainer._train_step gives WorldModel.optimize.

    Returns:
      o [N, l+2, S, 64, 64] float, and a, tanh r, terminated, truncated [N, l+1].
    """
    o = torch_side._observations(modules, windows["frames"])
    a, r, terminated, truncated = (
        torch.as_tensor(windows[name][:, :-1])
        for name in ("actions", "rewards", "terminated", "truncated")
    )
    r = torch.tanh(r.to(torch.get_default_dtype()))  # as the replay buffer stores them
    return o, a.long(), r, terminated, truncated


@torch.no_grad()
def heldout_metrics(wm, o, a, r, terminated, truncated) -> dict:
    """The world-model losses of windows in eval mode, without an update: `WorldModel.optimize`'s
    forward pass with latent samples (no straight-through path under no_grad)."""
    obs_model, dyn_model = wm.obs_model, wm.dyn_model
    wm.eval()
    context_z = obs_model.sample_z(obs_model.encode(o[:, :1]))
    next_logits = obs_model.encode(o[:, -1:]).base_dist.logits
    trained = o[:, 1:-1]
    z_dist = obs_model.encode(trained)
    z = obs_model.sample_z(z_dist)
    _, dec_met = obs_model.compute_decoder_loss(obs_model.decode(z), trained)
    _, ent_met = obs_model.compute_entropy_loss(z_dist)
    z_logits = z_dist.base_dist.logits
    target_logits = torch.cat([z_logits[:, 1:], next_logits], dim=1)
    d = torch.logical_or(terminated, truncated)
    g = wm.to_discounts(terminated)
    preds, h, _ = dyn_model.predict(
        torch.cat([context_z, z], dim=1), a, r[:, :-1], g[:, :-1], d[:, :-1],
        target_logits.shape[1], compute_consistency=True,
    )  # fmt: skip
    _, dyn_met = dyn_model.compute_dynamics_loss(
        preds, h, target_logits=target_logits, target_r=r[:, 1:], target_g=g[:, 1:],
        target_weights=(~d[:, 1:]).to(z.dtype),
    )  # fmt: skip
    _, con_met = obs_model.compute_consistency_loss(z_logits, preds["z_hat_probs"])
    return {**dec_met, **ent_met, **con_met, **dyn_met}


def actor_critic_update(modules, settings, wm, ac, windows, restart_obs) -> dict[str, float]:
    """One actor-critic update on imagination from `windows` with the frozen world model."""
    o, a, r, terminated, truncated = window_inputs(modules, windows)
    n, steps = a.shape  # steps = l + 1
    with torch.no_grad():  # z_0..z_l: context and trained steps, eval-mode samples
        z = wm.obs_model.eval().encode_sample(o[:, :steps])
    pool = torch_side._observations(modules, restart_obs).unsqueeze(1)  # [M, 1, S, 64, 64]

    def start_z_sampler(count):  # Trainer._create_start_z_sampler on the plan's observations
        rows = modules["utils"].random_choice(len(pool), count)
        return wm.obs_model.eval().encode_sample(pool[rows], temperature=1).squeeze(1)

    idx = modules["utils"].random_choice(n * (steps - 1), settings["ac_batch_size"])
    trajectory = torch_side._imagine(
        modules, settings, wm, ac, z, a, r, terminated, truncated, idx, start_z_sampler
    )
    metrics = _floats(ac.optimize(*trajectory))
    _, _, _, rewards, _, _, weights = trajectory
    metrics["imagined_reward"] = float(rewards.mean())
    return terms.from_original(metrics, settings, weight_mean=float(weights.mean()))


def load_init(wm, ac, config: dict, path: str) -> None:
    """Loads an init .npz (twm-tf's layout, weights/<model>/<path>) into the original's models."""
    with np.load(path) as init:
        weights = {k: init[k] for k in init.files}
    torch_side.load_weights(torch_side.torch_models(wm, ac), layout.rules(config), weights)


def save_weights(wm, ac, config: dict, init: str, path: str) -> None:
    """Writes `init`'s file with every trainable weight replaced by the original's current value,
    in twm-tf's layout (`layout.from_torch`): the start of an actor-critic phase of both codes on
    a world model the original trained."""
    weights = {}
    params = {
        (model, name): param
        for model, module in torch_side.torch_models(wm, ac).items()
        for name, param in module.named_parameters()
    }
    for key, rule in layout.rules(config).items():
        value = params[(key.split("/", 1)[0], rule.torch_name)].detach().cpu().numpy()
        weights[f"weights/{key}"] = layout.from_torch(rule.kind, value).astype(np.float32)
    layout.write_weights(init, path, weights)


def run(modules: dict, config: dict, args) -> terms.Log:
    """curves_tf's run with the original; returns its Log."""
    data = dataset_lib.load(args.dataset)
    plan = plan_lib.Plan(data, argparse.Namespace(**config), args.wm_updates, args.ac_updates)
    num_actions = int(data.actions.max()) + 1
    torch.manual_seed(args.seed)
    settings, wm, ac = torch_side.build_original(modules, config, num_actions)
    load_init(wm, ac, config, args.init)
    adapters = Adapters(modules, not args.no_latent_loss, not args.no_consistency_mask)
    pixels = config["frame_stack"] * config["frame_size"] ** 2
    seq_len = config["seq_len"]

    log = terms.Log()
    log.series["heldout_starts"] = list(plan.heldout_starts)  # curves_compare checks they match
    heldout = window_inputs(modules, plan.heldout_windows())

    def evaluate(update):
        adapters.set_mask((heldout[3] | heldout[4])[:, :seq_len])
        with torch.random.fork_rng():  # a fixed draw that leaves the training stream alone
            torch.manual_seed(HELDOUT_SEED)
            metrics = heldout_metrics(wm, *heldout)
        log.add_heldout(update, terms.from_original(_floats(metrics), settings, pixels))

    start = time.time()
    with adapters.installed():
        for update in range(args.wm_updates):
            if update % args.eval_every == 0:
                evaluate(update)
            o, a, r, terminated, truncated = window_inputs(modules, plan.wm_windows(update))
            adapters.set_mask((terminated | truncated)[:, :seq_len])
            _, _, metrics = wm.optimize(o, a, r, terminated, truncated)
            log.add("wm", terms.from_original(_floats(metrics), settings, pixels))
            progress("wm/", update, args.wm_updates, (time.time() - start) / (update + 1), log)
        evaluate(args.wm_updates)
        if args.save_weights:
            save_weights(wm, ac, config, args.init, args.save_weights)
        start = time.time()
        for update in range(args.ac_updates):
            windows, restart_obs = plan.ac_inputs(update)
            log.add("ac", actor_critic_update(modules, settings, wm, ac, windows, restart_obs))
            progress("ac/", update, args.ac_updates, (time.time() - start) / (update + 1), log)
    return log


def progress(prefix, update, total, seconds, log, every=50):
    """Prints every `every` updates and at the last the newest value of each `prefix`* series."""
    if (update + 1) % every and update + 1 != total:
        return
    last = {k[len(prefix) :]: v[-1] for k, v in log.series.items() if k.startswith(prefix)}
    values = " ".join(f"{k}={v:.4g}" for k, v in last.items())
    name = prefix.rstrip("/")
    print(f"{name} {update + 1}/{total} {seconds:.2f} s/update {values}", flush=True)


def common_parser(description: str) -> argparse.ArgumentParser:
    """The flags of every torch-side run of many updates (this one and pretrain_orig's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="twm-tf's config.json of the size")
    parser.add_argument("--dataset", required=True, help="recorded steps (record_dataset.py)")
    parser.add_argument("--init", required=True, help="initial weights, weights/<model>/<path>")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--orig_dir", required=True, help="jrobine/twm checkout's twm/ directory")
    parser.add_argument("--shims", required=True, help="shims.py that maps gym/wandb imports")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed of every draw")
    parser.add_argument("--no_latent_loss", action="store_true", help="released dynamics loss")
    parser.add_argument("--no_consistency_mask", action="store_true", help="released term")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def execute(run_fn, args: argparse.Namespace) -> None:
    """Imports the original and writes run_fn(modules, config, args)'s log to --out."""
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        config = json.load(f)
    modules = torch_side.import_original(args.orig_dir, args.shims)
    run_fn(modules, config, args).save(args.out)
    print(f"wrote {args.out}", flush=True)


def main():
    parser = common_parser(__doc__.split("\n")[0])
    parser.add_argument("--wm_updates", type=int, default=1000)
    parser.add_argument("--ac_updates", type=int, default=1000)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument(
        "--save_weights", help="also write the weights after the world-model phase, --init's format"
    )
    execute(run, parser.parse_args())


if __name__ == "__main__":
    main()

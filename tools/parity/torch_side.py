"""The original TWM's side of a parity case: one update of each optimizer, in PyTorch.

    /tmp/peer-venv/bin/python -m tools.parity.torch_side --case=/tmp/parity/small \
        --orig_dir=/work/shared/peer/twm_orig/twm --shims=/work/shared/peer/shims.py

Runs in a venv with torch and without TensorFlow (imports only NumPy modules of tools/parity). It
builds the original's WorldModel and ActorCritic from --orig_dir (a checkout of jrobine/twm at
e6a8e59) with the case's sizes (orig_config.py), loads twm-tf's initial weights (layout.py),
replays twm-tf's draws (torch_patches.py) and runs what `Trainer._train_step` runs:
`WorldModel.optimize` (dynamics step, then observation step), the imagination of `Dreamer` from the
case's starts, and `ActorCritic.optimize` (critic, then actor). It writes orig.npz in the case
directory with the keys of tools/parity/twm_update.py, in twm-tf's layout.
"""

import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import torch

from tools.parity import draws_file
from tools.parity import layout
from tools.parity import orig_config
from tools.parity import torch_patches

RESULTS = "orig.npz"
RESULTS_FLOAT64 = "orig64.npz"  # the same run in float64: the reference for rounding (diff.py)


def import_original(orig_dir: str, shims: str) -> dict:
    """The original's modules, imported from orig_dir after the shims (gym, wandb, ...)."""
    spec = importlib.util.spec_from_file_location("shims", shims)
    shim_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim_module)
    shim_module.install()
    sys.path.insert(0, os.path.abspath(orig_dir))  # the original imports its modules flat
    names = ("config", "nets", "utils", "world_model", "actor_critic", "agent")
    modules = {name: __import__(name) for name in names}
    for name, module in modules.items():
        if not os.path.abspath(module.__file__).startswith(os.path.abspath(orig_dir)):
            raise ImportError(f"{name} came from {module.__file__}, not from {orig_dir}")
    return modules


def build_original(modules: dict, config: dict, num_actions: int):
    """The original's WorldModel and ActorCritic at the sizes of a twm-tf config dict."""
    settings = dict(modules["config"].CONFIGS["default"])
    settings.update(orig_config.overrides(config))
    wm = modules["world_model"].WorldModel(settings, num_actions)
    if list(config["encoder_hidden"]) != [512, 512]:
        # The original fixes these widths; build its own MLP with the config's and give the
        # observation optimizer the new parameters, as WorldModel.__init__ does.
        h = settings["obs_channels"]
        wm.obs_model.encoder[2] = modules["nets"].MLP(
            (h * 8) * 2 * 2, list(config["encoder_hidden"]), wm.obs_model.z_dim,
            settings["obs_act"], norm=settings["obs_norm"], dropout_p=settings["obs_dropout"],
        )  # fmt: skip
        wm.obs_optimizer = modules["utils"].AdamOptim(
            wm.obs_model.parameters(), lr=settings["obs_lr"], eps=settings["obs_eps"],
            weight_decay=settings["obs_wd"], grad_clip=settings["obs_grad_clip"],
        )  # fmt: skip
    ac = modules["actor_critic"].ActorCritic(settings, num_actions, wm.z_dim, wm.h_dim)
    return settings, wm, ac


def torch_models(wm, ac) -> dict:
    return {
        "observation": wm.obs_model,
        "dynamics": wm.dyn_model,
        "actor": ac.actor_model,
        "critic": ac.critic_model,
    }


def load_weights(models: dict, rules: dict, weights: dict) -> None:
    """Copies twm-tf's weights into the original's parameters; every parameter must get one."""
    params = {(m, n): p for m, module in models.items() for n, p in module.named_parameters()}
    covered = set()
    for key, rule in rules.items():
        model = key.split("/", 1)[0]
        param = params[(model, rule.torch_name)]
        value = layout.to_torch(rule.kind, weights[f"weights/{key}"])
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"{key}: {value.shape} does not fit {rule.torch_name} {param.shape}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        covered.add((model, rule.torch_name))
    if missing := sorted(set(params) - covered):
        raise ValueError(f"original parameters without a twm-tf weight: {missing}")


def _tensor(x, dtype=None):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _observations(modules, frames) -> torch.Tensor:
    """uint8 frames -> the original's float observations, in the default dtype."""
    return modules["utils"].preprocess_atari_obs(frames).to(torch.get_default_dtype())


def _window_inputs(modules, config: dict, arrays: dict):
    """What Trainer._train_step gives WorldModel.optimize: o [N, l+2], a, r, terminated,
    truncated [N, l+1] (the case's windows are one step longer, for twm-tf's last target)."""
    steps = config["seq_len"] + 1
    o = _observations(modules, arrays["frame_bank"][arrays["window_frames"]])  # [N, l+2, S, H, W]
    a = _tensor(arrays["actions"][:, :steps], torch.long)
    r = torch.tanh(_tensor(arrays["rewards"][:, :steps], torch.get_default_dtype()))  # as replay
    terminated = _tensor(arrays["terminated"][:, :steps])
    truncated = _tensor(arrays["dones"][:, :steps] & ~arrays["terminated"][:, :steps])
    return o, a, r, terminated, truncated


def _imagine(modules, settings, wm, ac, z, a, r, terminated, truncated, idx, start_z_sampler):
    """Trainer._train_step after the world-model update, with the case's start indices `idx`.

    Returns:
      Dreamer.get_data() without o: (z, h, a, r, g, d, weights).
    """
    windows = modules["utils"].windows
    a, r, terminated, truncated = (x[:, :-1] for x in (a, r, terminated, truncated))
    starts = [windows(z, 2).flatten(0, 1)[idx]]
    starts += [windows(x, 1).flatten(0, 1)[idx] for x in (a, r, terminated, truncated)]
    dreamer = modules["agent"].Dreamer(
        settings, wm, mode="imagine", ac=ac, store_data=True, start_z_sampler=start_z_sampler
    )
    dreamer.imagine_reset(*starts)
    for _ in range(settings["ac_horizon"]):
        dreamer.imagine_step(dreamer.act())
    z, _, h, a, r, g, d, weights = dreamer.get_data()
    return z, h, a, r, g, d, weights


def run(
    modules: dict,
    config: dict,
    arrays: dict,
    draws: tuple,
    latent_loss: bool,
    consistency_mask: bool,
    wm_only: bool = False,
) -> dict:
    """One update of the original on a case; returns the results in twm-tf's layout.

    Args:
      modules: from import_original.
      config: the case's twm-tf Config as a dict.
      arrays: case.npz.
      draws: draws_file.read of draws.npz.
      latent_loss, consistency_mask: the adapters (torch_patches).
      wm_only: stop after the world-model update (results of observation and dynamics only).
    """
    settings, wm, ac = build_original(modules, config, int(arrays["num_actions"]))
    models = torch_models(wm, ac)
    rules = layout.rules(config)
    load_weights(models, rules, arrays)
    o, a, r, terminated, truncated = _window_inputs(modules, config, arrays)
    seq_len = config["seq_len"]
    done = (terminated | truncated)[:, :seq_len]  # before each trained step
    mask_fn = (lambda: (~done).float()) if consistency_mask else None

    noise, masks, restarts = draws
    dropout = torch_patches.DropoutMasks(masks, torch_patches.dropout_sites(wm.dyn_model))
    wm_noise = noise[0][0]  # [N, L, V, C]: step 0 for the context, 1..l for the trained steps
    queue = torch_patches.NoiseQueue([wm_noise[:, :1], wm_noise[:, 1 : seq_len + 1], *noise[1:]])
    recorder = torch_patches.GradientRecorder(models)

    def start_z_sampler(n):  # the trainer's, with the observations twm-tf re-encoded
        frames = restarts.pop(0)
        if len(frames) != n:
            raise ValueError(f"the original restarts {n} rollouts, twm-tf {len(frames)}")
        obs = _observations(modules, frames).unsqueeze(1)
        return wm.obs_model.eval().encode_sample(obs, temperature=1).squeeze(1)

    with torch_patches.installed(modules, queue, recorder, latent_loss, mask_fn, dropout):
        z, _, _ = wm.optimize(o, a, r, terminated, truncated)
        if wm_only:
            return _model_results(models, rules, recorder, wm, ac, ("observation", "dynamics"))
        idx = _tensor(arrays["starts"], torch.long)
        trajectory = _imagine(
            modules, settings, wm, ac, z, a, r, terminated, truncated, idx, start_z_sampler
        )
        ac.optimize(*trajectory)
    if queue.used != len(queue.arrays) or restarts or dropout.used != len(dropout.masks):
        raise ValueError("the original used fewer draws than twm-tf recorded")

    results = _model_results(models, rules, recorder, wm, ac)
    z, _, a, r, g, d, weights = trajectory
    results["imagination/z"] = z.reshape(*z.shape[:2], config["latent_vars"], -1).numpy()
    fields = {"actions": a, "rewards": r, "discounts": g, "dones": d, "weights": weights}
    results.update({f"imagination/{name}": x.numpy() for name, x in fields.items()})
    return results


def _model_results(models, rules, recorder, wm, ac, names=layout.MODELS) -> dict:
    optimizers = {
        "observation": wm.obs_optimizer,
        "dynamics": wm.dyn_optimizer,
        "actor": ac.actor_optimizer,
        "critic": ac.critic_optimizer,
    }
    results = {}
    for model in names:
        params = dict(models[model].named_parameters())
        state = optimizers[model].optimizer.state
        results[f"{model}/grad_norm"] = np.float32(recorder.norms[model])
        for key, rule in rules.items():
            if not key.startswith(model + "/"):
                continue
            path, p = key.split("/", 1)[1], params[rule.torch_name]
            grad = recorder.grads[model].get(rule.torch_name)
            values = {
                "grad": torch.zeros_like(p) if grad is None else torch.from_numpy(grad),
                "weight": p,
            }
            if p in state:  # Adam keeps no state for a parameter that never had a gradient
                values.update(exp_avg=state[p]["exp_avg"], exp_avg_sq=state[p]["exp_avg_sq"])
            for what, value in values.items():
                results[f"{model}/{what}/{path}"] = layout.from_torch(
                    rule.kind, value.detach().numpy()
                )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", required=True, help="case directory (make_case.py)")
    parser.add_argument("--orig_dir", required=True, help="jrobine/twm checkout's twm/ directory")
    parser.add_argument("--shims", required=True, help="shims.py that maps gym/wandb imports")
    parser.add_argument("--out", help=f"results file (default: <case>/{RESULTS})")
    parser.add_argument(
        "--no_latent_loss",
        action="store_true",
        help="run the original's dynamics loss as released (no next-latent term)",
    )
    parser.add_argument(
        "--no_consistency_mask",
        action="store_true",
        help="run the original's consistency term as released (no episode mask)",
    )
    parser.add_argument(
        "--no_mkldnn",
        action="store_true",
        help="torch's own convolution kernels instead of oneDNN's (diagnostics)",
    )
    parser.add_argument(
        "--wm_only",
        action="store_true",
        help="stop after the world-model update (e.g. when an adapter is off)",
    )
    parser.add_argument(
        "--float64",
        action="store_true",
        help=f"run in float64 and write {RESULTS_FLOAT64} (the rounding reference)",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    if args.float64:
        torch.set_default_dtype(torch.float64)
    modules = import_original(args.orig_dir, args.shims)
    with open(os.path.join(args.case, "config.json")) as f:
        config = json.load(f)
    with np.load(os.path.join(args.case, "case.npz")) as data:
        arrays = {k: data[k] for k in data.files}
    draws = draws_file.read(os.path.join(args.case, "draws.npz"))
    results = run(
        modules, config, arrays, draws, not args.no_latent_loss, not args.no_consistency_mask,
        args.wm_only,
    )  # fmt: skip
    results["adapters"] = np.array([
        f"latent_loss={not args.no_latent_loss}",
        f"consistency_mask={not args.no_consistency_mask}",
        f"mkldnn={not args.no_mkldnn}",
    ])  # fmt: skip
    out = args.out or os.path.join(args.case, RESULTS_FLOAT64 if args.float64 else RESULTS)
    np.savez_compressed(out, **results)
    print(f"wrote {out}: {len(results)} arrays")


if __name__ == "__main__":
    main()

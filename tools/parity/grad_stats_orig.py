"""The original's side of the gradient-moment comparison (grad_stats.py), in PyTorch.

    /tmp/peer-venv/bin/python -m tools.parity.grad_stats_orig \
        --config=/data/config-small/config.json --dataset=/data/boxing-25k.npz \
        --init=/data/trained-wm-0.npz --batches=900,950 --draws=64 --out=/data/grads-orig.npz \
        --orig_dir=/work/shared/peer/twm_orig/twm --shims=/work/shared/peer/shims.py

grad_stats_tf.py's run with the original: loads --init (twm-tf's layout), and for each --batches
entry runs `WorldModel.optimize` on plan.py's windows --draws times with its two optimizers'
steps replaced by a capture of the gradients (zero_grad and backward as `AdamOptim.step`, no
clipping, no Adam step), so every draw starts from the same weights. The adapters of
curves_orig.py are on. Gradients are stored in twm-tf's layout (layout.from_torch).
"""

import argparse

import numpy as np
import torch

from tools.parity import curves_orig
from tools.parity import dataset as dataset_lib
from tools.parity import grad_stats
from tools.parity import layout
from tools.parity import plan as plan_lib
from tools.parity import torch_side


def run(modules: dict, config: dict, args) -> grad_stats.Moments:
    """The flags' moments."""
    data = dataset_lib.load(args.dataset)
    batches = [int(b) for b in args.batches.split(",")]
    plan = plan_lib.Plan(data, argparse.Namespace(**config), max(batches) + 1, 0)
    torch.manual_seed(args.seed)
    _, wm, ac = torch_side.build_original(modules, config, int(data.actions.max()) + 1)
    curves_orig.load_init(wm, ac, config, args.init)
    rules = layout.rules(config)
    captured = {}

    def capture(model, module):
        by_name = dict(module.named_parameters())
        keys = {k: r for k, r in rules.items() if k.startswith(f"{model}/")}

        def step(loss):
            module.zero_grad(set_to_none=True)
            loss.backward()
            for key, rule in keys.items():
                grad = by_name[rule.torch_name].grad
                value = np.zeros(by_name[rule.torch_name].shape) if grad is None else grad.numpy()
                captured[key] = layout.from_torch(rule.kind, value)

        return step

    wm.dyn_optimizer.step = capture("dynamics", wm.dyn_model)
    wm.obs_optimizer.step = capture("observation", wm.obs_model)
    adapters = curves_orig.Adapters(modules, not args.no_latent_loss, not args.no_consistency_mask)
    moments = grad_stats.Moments()
    seq_len = config["seq_len"]
    with adapters.installed():
        for batch in batches:
            o, a, r, terminated, truncated = curves_orig.window_inputs(
                modules, plan.wm_windows(batch)
            )
            adapters.set_mask((terminated | truncated)[:, :seq_len])
            for _ in range(args.draws):
                captured.clear()
                wm.optimize(o, a, r, terminated, truncated)
                moments.add(batch, dict(captured))
    return moments


def main():
    parser = curves_orig.common_parser(__doc__.split("\n")[0])
    parser.add_argument("--batches", default="900,950", help="plan updates whose windows to use")
    parser.add_argument("--draws", type=int, default=64)
    curves_orig.execute(run, parser.parse_args())


if __name__ == "__main__":
    main()

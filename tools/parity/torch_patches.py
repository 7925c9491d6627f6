"""Run-time patches of the original TWM code for a parity run (torch venv; no TensorFlow).

Nothing of the original is copied or edited on disk; these replace a few of its functions in the
running process:

* draws: `ObservationModel.sample_z` and `ActorCritic.policy` sample argmax(logits + noise) with
  the Gumbel noise twm-tf used (draws.py), in the same order. `sample_z` keeps the original's
  straight-through form, one-hot + probs - sg(probs); `policy` keeps its eval() and inputs.
* dropout: `nn.Dropout.forward` applies twm-tf's recorded keep masks, mapped from twm-tf's layout
  to the original's at each site (`DropoutMasks`); the training window of twm-tf is 3 tokens
  (r_l, z_{l+1}, a_{l+1}) and one step longer, so the original's masks are its leading part.
* recording: `torch.nn.utils.clip_grad_norm_` first records every gradient and the global norm
  it computes (the original's `AdamOptim.step` calls it between backward() and Adam's step).
* adapters for twm-tf's documented deliberate choices (README, "Adapters"), each optional:
  `latent_loss` lets the original's dynamics loss include its next-latent term (its code skips
  the term: `'z' in preds` is never true), `consistency_mask` averages the consistency term
  over the steps twm-tf keeps (not the first step after an episode end).
"""

import contextlib

import numpy as np
import torch
import torch.nn.functional as F


class NoiseQueue:
    """Gumbel noise arrays consumed in call order, reshaped to the shape each call needs."""

    def __init__(self, arrays):
        self.arrays = list(arrays)
        self.used = 0

    def pop(self, shape) -> torch.Tensor:
        if self.used >= len(self.arrays):
            raise ValueError(
                f"the original wants draw {self.used} of shape {tuple(shape)}; none left"
            )
        value = self.arrays[self.used]
        squeezed = tuple(d for d in value.shape if d != 1)
        if squeezed != tuple(d for d in shape if d != 1):
            raise ValueError(
                f"draw {self.used} has shape {value.shape}, the original wants {tuple(shape)}: "
                "the two codes sample in a different order"
            )
        self.used += 1
        return torch.from_numpy(np.ascontiguousarray(value)).reshape(tuple(shape))


def dropout_sites(dyn_model) -> dict:
    """id(nn.Dropout) -> site kind (position, attention, token, head) of a DynamicsModel."""
    net = dyn_model.prediction_net
    modules = {net.transformer.pos_enc.dropout: "position"}
    for layer in net.transformer.layers:
        modules[layer.self_attn.dropout] = "attention"
        modules[layer.dropout] = "token"
    for head in net.out_heads.values():
        if hasattr(head, "dropout"):
            modules[head.dropout] = "head"
    return {id(m): kind for m, kind in modules.items() if isinstance(m, torch.nn.Dropout)}


class DropoutMasks:
    """twm-tf's keep masks in call order, each cut and transposed to the original's layout."""

    def __init__(self, masks, sites: dict):
        self.masks, self.sites, self.used = list(masks), sites, 0

    def pop(self, module, shape) -> torch.Tensor:
        kind = self.sites[id(module)]
        if self.used >= len(self.masks):
            raise ValueError(f"the original wants dropout mask {self.used} ({kind}); none left")
        site, mask = self.masks[self.used]
        if site != kind:
            raise ValueError(f"dropout mask {self.used} is twm-tf's {site}, the original's {kind}")
        self.used += 1
        if kind == "position":  # [K, D], rows by descending distance -> the last `src` rows
            mask = mask[mask.shape[0] - shape[0] :]
        elif kind == "attention":  # [heads, B, Tq, Tk] -> [tgt, src, B, heads]
            mask = mask[:, :, : shape[0], : shape[1]].transpose(2, 3, 1, 0)
        elif kind == "token":  # [B, K, X] -> [T, B, X]
            mask = mask[:, : shape[0]].transpose(1, 0, 2)
        else:  # head: [B, L, n] -> [B * steps, n]
            mask = mask[:, : shape[0] // mask.shape[0]].reshape(-1, mask.shape[-1])
        if mask.shape != tuple(shape):
            raise ValueError(
                f"dropout mask {self.used - 1} ({kind}) maps to {mask.shape}, not {shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(mask))


class GradientRecorder:
    """Gradients before clipping and the global norm, per optimizer, keyed by parameter."""

    def __init__(self, owners: dict):
        """owners: {model name: its torch module}; the parameters identify the optimizer."""
        self._names = {
            id(p): (model, name)
            for model, module in owners.items()
            for name, p in module.named_parameters()
        }
        self.grads = {}  # model -> {parameter name: np.ndarray}
        self.norms = {}  # model -> float

    def __call__(self, original, parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        models = {self._names[id(p)][0] for p in parameters}
        if len(models) != 1:
            raise ValueError(f"one optimizer spans models {sorted(models)}")
        model = models.pop()
        self.grads[model] = {
            self._names[id(p)][1]: p.grad.detach().clone().numpy()
            for p in parameters
            if p.grad is not None
        }
        norm = original(parameters, max_norm, *args, **kwargs)
        self.norms[model] = float(norm)
        return norm


@contextlib.contextmanager
def installed(
    modules, noise: NoiseQueue, recorder: GradientRecorder, latent_loss: bool, mask_fn=None,
    dropout: DropoutMasks | None = None,
):  # fmt: skip
    """Patches the original's modules (see the module docstring) for the duration of a block.

    Args:
      modules: {"world_model": module, "actor_critic": module} of the original code.
      noise: the draws.
      recorder: receives every clip_grad_norm_ call.
      latent_loss: let the dynamics loss include the next-latent term.
      mask_fn: if given, () -> [N, l] float mask of the consistency term (twm-tf's choice).
      dropout: twm-tf's dropout masks; None leaves dropout as it is (the cases switch it off).
    """
    world_model, actor_critic = modules["world_model"], modules["actor_critic"]
    saved = [
        (world_model.ObservationModel, "sample_z"),
        (world_model.ObservationModel, "compute_consistency_loss"),
        (world_model.DynamicsModel, "predict"),
        (actor_critic.ActorCritic, "policy"),
        (torch.nn.utils, "clip_grad_norm_"),
        (torch.nn.Dropout, "forward"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name in saved]
    originals = {name: value for _, name, value in saved}
    sample_z, policy = _draw_patches(noise)
    predict, compute_consistency_loss = _loss_patches(originals, latent_loss, mask_fn)
    clip_grad_norm_, dropout_forward = _training_patches(originals, recorder, dropout)

    world_model.ObservationModel.sample_z = sample_z
    world_model.ObservationModel.compute_consistency_loss = compute_consistency_loss
    world_model.DynamicsModel.predict = predict
    actor_critic.ActorCritic.policy = policy
    torch.nn.utils.clip_grad_norm_ = clip_grad_norm_
    torch.nn.Dropout.forward = dropout_forward
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _draw_patches(noise: NoiseQueue):
    """`ObservationModel.sample_z` and `ActorCritic.policy` drawing twm-tf's Gumbel noise."""

    def sample_z(self, z_dist, reparameterized=False, temperature=1, idx=None, return_logits=False):
        if temperature != 1 or idx is not None or return_logits:
            raise NotImplementedError("parity runs sample at temperature 1 only")
        logits = z_dist.base_dist.logits  # [B, T, V, C], normalized
        classes = torch.argmax(logits.detach() + noise.pop(logits.shape), dim=-1)
        z = F.one_hot(classes, num_classes=logits.shape[-1]).to(logits.dtype)
        if reparameterized:
            probs = z_dist.base_dist.probs
            z = z + (probs - probs.detach())
        return z.flatten(2, 3)

    @torch.no_grad()
    def policy(self, z, h, temperature=1):
        if temperature != 1:
            raise NotImplementedError("parity runs sample at temperature 1 only")
        self.eval()
        logits = self.actor(self._prepare_inputs(z, h))  # [M, 1, A]
        return torch.argmax(logits + noise.pop(logits.shape), dim=-1)

    return sample_z, policy


def _loss_patches(originals: dict, latent_loss: bool, mask_fn):
    """`DynamicsModel.predict` and `ObservationModel.compute_consistency_loss` (the adapters)."""

    def predict(self, *args, **kwargs):
        outputs = originals["predict"](self, *args, **kwargs)
        if latent_loss and "z_dist" in outputs[0]:
            outputs[0]["z"] = None  # compute_dynamics_loss tests `'z' in preds`
        return outputs

    def compute_consistency_loss(self, z_logits, z_hat_probs):
        if mask_fn is None:
            return originals["compute_consistency_loss"](self, z_logits, z_hat_probs)
        cross_entropy = -(z_hat_probs.detach() * z_logits).sum(-1).sum(-1)  # [N, l]
        mask = mask_fn()
        loss = (
            self.config["obs_consistency_coef"]
            * (mask * cross_entropy).sum()
            / mask.sum().clamp(min=1)
        )
        return loss, {}

    return predict, compute_consistency_loss


def _training_patches(originals: dict, recorder: GradientRecorder, dropout: DropoutMasks | None):
    """`torch.nn.utils.clip_grad_norm_` (recording) and `nn.Dropout.forward` (twm-tf's masks)."""

    def clip_grad_norm_(parameters, max_norm, *args, **kwargs):
        return recorder(originals["clip_grad_norm_"], parameters, max_norm, *args, **kwargs)

    def dropout_forward(self, x):
        if not self.training or self.p == 0 or dropout is None:
            return originals["forward"](self, x)
        keep = dropout.pop(self, x.shape).to(x.dtype)
        return x * (keep * (1.0 / (1.0 - self.p)))

    return clip_grad_norm_, dropout_forward

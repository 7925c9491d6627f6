"""The original TWM's config dict for a twm-tf Config (NumPy/stdlib only: the torch side uses it).

The original sizes its VAE by one base width h (`obs_channels`): encoder channels h, 2h, 4h, 8h,
decoder dense 16h and transposed convolutions 4h, 2h, h. Its encoder's dense widths are fixed at
[512, 512]; any other `encoder_hidden` is built by the torch side with the original's own
`nets.MLP` (see `torch_side.build_original`). Head size is `dyn_width / dyn_heads` in twm-tf and a
key of its own in the original.
"""


def overrides(config: dict) -> dict:
    """Keys of the original's CONFIGS['default'] that reproduce `config` (a twm-tf Config dict).

    Raises:
      ValueError: if the VAE widths do not follow the original's h-multiples.
    """
    h = _base_width(config)
    return {
        **_env_and_world_model(config),
        **_observation_model(config, h),
        **_dynamics_model(config),
        **_actor_critic(config),
    }


def _base_width(config: dict) -> int:
    """The original's obs_channels h; ValueError unless the VAE widths are its h-multiples."""
    h = config["encoder_channels"][0]
    if tuple(config["encoder_channels"]) != (h, 2 * h, 4 * h, 8 * h):
        raise ValueError(
            f"encoder_channels must be h * (1, 2, 4, 8), got {config['encoder_channels']}"
        )
    if tuple(config["decoder_channels"]) != (4 * h, 2 * h, h) or config["decoder_hidden"] != 16 * h:
        raise ValueError(
            "the original's decoder is dense 16h then 4h, 2h, h channels; got "
            f"{config['decoder_hidden']}, {config['decoder_channels']} for h = {h}"
        )
    return h


def _env_and_world_model(config: dict) -> dict:
    return {
        "env_frame_stack": config["frame_stack"],
        "env_frame_size": config["frame_size"],
        "env_grayscale": True,
        "env_discount_factor": config["gamma"],
        "env_discount_lambda": config["lam"],
        "wm_batch_size": config["wm_batch"],
        "wm_sequence_length": config["seq_len"],
        "wm_memory_length": config["memory_steps"],
        "wm_discount_threshold": config["restart_threshold"],
    }


def _observation_model(config: dict, h: int) -> dict:
    return {
        "z_categoricals": config["latent_vars"],
        "z_categories": config["latent_classes"],
        "obs_channels": h,
        "obs_lr": config["obs_lr"],
        "obs_wd": config["weight_decay"],
        "obs_eps": config["adam_eps"],
        "obs_grad_clip": config["wm_clip"],
        "obs_entropy_coef": config["alpha1"],
        "obs_entropy_threshold": config["entropy_threshold_z"],
        "obs_consistency_coef": config["alpha2"],
        "obs_decoder_coef": 1,
    }


def _dynamics_model(config: dict) -> dict:
    return {
        "dyn_embed_dim": config["dyn_width"],
        "dyn_num_heads": config["dyn_heads"],
        "dyn_head_dim": config["dyn_width"] // config["dyn_heads"],
        "dyn_num_layers": config["dyn_layers"],
        "dyn_feedforward_dim": config["dyn_ffn"],
        "dyn_z_dims": list(config["latent_head"]),
        "dyn_reward_dims": list(config["scalar_head"]),
        "dyn_discount_dims": list(config["scalar_head"]),
        "dyn_input_rewards": config["reward_input"],
        "dyn_input_discounts": False,
        "dyn_dropout": config["dyn_dropout"],
        "dyn_lr": config["dyn_lr"],
        "dyn_wd": config["weight_decay"],
        "dyn_eps": config["adam_eps"],
        "dyn_grad_clip": config["wm_clip"],
        "dyn_z_coef": 1,
        "dyn_reward_coef": config["beta1"],
        "dyn_discount_coef": config["beta2"],
    }


def _actor_critic(config: dict) -> dict:
    return {
        "ac_batch_size": config["imag_starts"],
        "ac_horizon": config["horizon"],
        "ac_input_h": False,
        "actor_dims": list(config["ac_hidden"]),
        "actor_lr": config["actor_lr"],
        "actor_eps": config["adam_eps"],
        "actor_wd": config["weight_decay"],
        "actor_entropy_coef": config["entropy_coef"],
        "actor_entropy_threshold": config["entropy_threshold"],
        "actor_grad_clip": config["ac_clip"],
        "critic_dims": list(config["ac_hidden"]),
        "critic_lr": config["critic_lr"],
        "critic_eps": config["adam_eps"],
        "critic_wd": config["weight_decay"],
        "critic_grad_clip": config["ac_clip"],
        "critic_target_interval": 1,
    }

"""How the world model's held-out reward and latent predictions improve with its updates.

    python -m tools.tuning.world_model_updates --preset=small --game=Boxing \
        --replay=runs/boxing-1/checkpoints/replay-26.bin \
        --held_out_replay=runs/boxing-0/checkpoints/replay-26.bin --updates=1200 --out=wm.json
    # and e.g. --config.beta1=50: the same probe for another loss weight

Trains a fresh world model with the run's own world-model update (VAE and dynamics together,
as in the main loop) on uniformly drawn windows of --replay, a finished run's experience, so
every variant sees the same data without acting. Every --measure_every updates it scores
--held_out_windows fixed windows of --held_out_replay (another run's experience; or, with
--held_out_last=K, of --replay's last K steps, which it then does not train on), the latents
drawn from a fixed seed:
- the 1-step reward MSE against the mean baseline (predicting the training replay's mean tanh
  reward): the gain is what imagined advantages are made of;
- the next-latent cross-entropy (nats, summed over the 32 variables) and the decoder NLL.
"""

import math

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tools.tuning import replay_parts
from tools.tuning import results
from twm_tf import config_flags
from twm_tf import learner as learner_lib
from twm_tf import world_model as world_model_lib
from twm_tf.envs import atari
from twm_tf.replay import buffer as replay_lib
from twm_tf.replay import file_format as replay_file

config_flags.define_flags()
_GAME = flags.DEFINE_string("game", "Boxing", "Atari game the replays are from.")
_REPLAY = flags.DEFINE_string("replay", None, "Replay file to train on (a run's replay-*.bin).")
_HELD_OUT = flags.DEFINE_string("held_out_replay", None, "Replay file to measure on.")
_HELD_OUT_LAST = flags.DEFINE_integer(
    "held_out_last", None, "Instead of --held_out_replay: measure on --replay's last steps."
)
_HELD_OUT_WINDOWS = flags.DEFINE_integer("held_out_windows", 512, "Fixed windows measured on.")
_UPDATES = flags.DEFINE_integer("updates", 1200, "World-model updates.")
_MEASURE_EVERY = flags.DEFINE_integer("measure_every", 200, "Updates between measurements.")
_SEED = flags.DEFINE_integer("probe_seed", 0, "Seed of the windows and the model's draws.")
_OUT = flags.DEFINE_string("out", None, "JSON file to write.")

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)  # A unit-variance Normal's NLL at zero error.


def replays(path: str, held_out_path: str | None, held_out_last: int | None, seed: int):
    """The buffers to train and measure on, and the mean tanh reward of the training steps.

    Either another file is held out (`held_out_path`), or the last `held_out_last` steps of
    `path`: then the model trains on the steps before them, the same policy's earlier games.
    """
    if (held_out_path is None) == (held_out_last is None):
        raise ValueError("give exactly one of --held_out_replay and --held_out_last")
    header, arrays = replay_file.read(path)
    size = header["size"]
    if held_out_last is not None and not 0 < held_out_last < size:
        raise ValueError(
            f"--held_out_last must be in (0, {size}), the steps of {path}; got {held_out_last}"
        )
    cut = size if held_out_last is None else size - held_out_last
    # Both parts come from the arrays read once: the file is ~400 MB with a checksum to verify.
    train = replay_parts.part_buffer(header, arrays, 0, cut, seed)
    if held_out_path is not None:
        held_out = replay_lib.ReplayBuffer.restore(held_out_path, seed=10_000 + seed)
    else:
        held_out = replay_parts.part_buffer(header, arrays, cut, size, 10_000 + seed)
    return train, held_out, float(np.mean(np.tanh(arrays["rewards"][:cut])))


def held_out_batches(buffer, config, windows: int) -> list[world_model_lib.Batch]:
    """`windows` fixed uniform windows of `buffer`, in batches of the config's N."""
    steps = world_model_lib.replay_steps(config)
    n = config.wm_batch
    return [
        world_model_lib.Batch.from_replay(buffer.sample_uniform(n, steps))
        for _ in range(max(1, windows // n))
    ]


def measure(wm: world_model_lib.WorldModel, batches, mean_reward: float) -> dict:
    """Held-out reward MSE (model and mean baseline), next-latent CE and decoder NLL.

    The reward NLL of a unit-variance Normal is ln(2 pi) / 2 + MSE / 2, averaged over the same
    steps as the baseline's squared error: transitions 1..l of each window.
    """
    totals = dict(reward_mse=0.0, mean_baseline_mse=0.0, latent_ce=0.0, decoder_nll=0.0)
    for batch in batches:
        _, _, metrics, _ = wm.losses(batch, tf.constant([0, 0], tf.int64), training=False)
        rewards = np.tanh(batch.rewards[:, 1:-1])
        totals["reward_mse"] += 2.0 * (float(metrics["dyn/reward"]) - _HALF_LOG_2PI)
        totals["mean_baseline_mse"] += float(np.mean(np.square(rewards - mean_reward)))
        totals["latent_ce"] += float(metrics["dyn/latent"])
        totals["decoder_nll"] += float(metrics["obs/recon"])
    result = {k: v / len(batches) for k, v in totals.items()}
    result["reward_gain"] = 1.0 - result["reward_mse"] / result["mean_baseline_mse"]
    return result


def main(argv):
    del argv
    if not (_REPLAY.value and _OUT.value):
        raise app.UsageError("--replay and --out are required")
    config = config_flags.from_flags(game=_GAME.value)
    tf.random.set_seed(_SEED.value)
    try:
        train, held_out, mean_reward = replays(
            _REPLAY.value, _HELD_OUT.value, _HELD_OUT_LAST.value, _SEED.value
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    batches = held_out_batches(held_out, config, _HELD_OUT_WINDOWS.value)
    env = atari.from_config(config, training=True, seed=0)
    num_actions = env.num_actions
    env.close()
    wm = learner_lib.Learner(config, num_actions).world_model
    steps = world_model_lib.replay_steps(config)
    window = world_model_lib.batch_signature(config, config.wm_batch, steps + 1)
    step = tf.function(wm.train_step, input_signature=[window, tf.TensorSpec([2], tf.int64)])

    def update(i: int) -> None:
        batch = world_model_lib.Batch.from_replay(train.sample_uniform(config.wm_batch, steps))
        step(batch, tf.constant([_SEED.value, i], tf.int64))

    log = results.measured_updates(
        _UPDATES.value,
        _MEASURE_EVERY.value,
        lambda _: measure(wm, batches, mean_reward),
        update,
    )
    result = dict(
        game=config.game,
        replay=_REPLAY.value,
        held_out_replay=_HELD_OUT.value,
        held_out_last=_HELD_OUT_LAST.value,
        beta1=config.beta1,
        dyn_lr=config.dyn_lr,
        obs_lr=config.obs_lr,
        wm_batch=config.wm_batch,
        mean_reward=mean_reward,
        log=log,
    )
    results.write(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)

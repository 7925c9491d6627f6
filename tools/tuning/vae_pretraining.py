"""How well VAE pretraining reconstructs held-out frames, against its updates, for one config.

    python -m tools.tuning.vae_pretraining --preset=small --game=Boxing --out=vae.json
    python -m tools.tuning.vae_pretraining --preset=small --config.pretrain_obs_batch=1600 \
        --config.obs_lr=1e-4 --updates=375 --out=vae-old.json

Collects --prefill uniformly random training-env steps (seed 0) to pretrain on and --held_out
steps of another game (seed 123) to measure on, then runs `Learner.pretrain_vae` (the run's own
VAE pretraining update) --updates times. Every --measure_every updates it decodes the held-out
observations' mode latents and reports the newest frame's squared error over all pixels and over
moving-object pixels: those whose value differs from the held-out frames' per-pixel median by
more than 25 of 255 (the objects the player sees and controls; the background is most pixels).
"""

from absl import app
from absl import flags
import numpy as np

from tools.tuning import results
from twm_tf import config as config_lib
from twm_tf import config_flags
from twm_tf import learner as learner_lib
from twm_tf import schedule as schedule_lib
from twm_tf.dev import testdata
from twm_tf.envs import atari
from twm_tf.models import distributions
from twm_tf.replay import buffer as replay_lib

config_flags.define_flags()
_GAME = flags.DEFINE_string("game", "Boxing", "Atari game.")
_UPDATES = flags.DEFINE_integer("updates", None, "VAE updates (default: the config's schedule).")
_MEASURE_EVERY = flags.DEFINE_integer("measure_every", 100, "Updates between measurements.")
_PREFILL = flags.DEFINE_integer("prefill", 5000, "Random steps to pretrain on.")
_HELD_OUT = flags.DEFINE_integer("held_out", 600, "Random steps to measure on (every 3rd).")
_OUT = flags.DEFINE_string("out", None, "JSON file to write.")

MOVING_THRESHOLD = 25  # Of 255: a pixel this far from the median shows an object.


def random_steps(config: config_lib.Config, steps: int, seed: int):
    """Returns (num_actions, a ReplayBuffer of `steps` random steps, their obs [T, S, H, W])."""
    env = atari.from_config(config, training=True, seed=seed)
    recording = testdata.play_random(env, steps, seed)
    env.close()
    buffer = replay_lib.ReplayBuffer(capacity=steps, tau=float("inf"), seed=seed)
    testdata.add_to(buffer, recording)
    return env.num_actions, buffer, testdata.stacks(recording, config.frame_stack)


def reconstruction_errors(learner, observations: np.ndarray, moving: np.ndarray) -> dict:
    """Squared error of the newest frame's reconstruction: all pixels, and `moving` ones."""
    vae = learner.world_model.observation
    frames = vae.decode(distributions.latent_mode(vae.encode(observations))).numpy()[:, -1]
    error = np.square(frames - observations[:, -1] / 255.0)
    return {"mse": float(error.mean()), "moving_mse": float(error[moving].mean())}


def main(argv):
    del argv
    if not _OUT.value:
        raise app.UsageError("--out must name the JSON file to write")
    config = config_flags.from_flags(game=_GAME.value)
    num_actions, buffer, _ = random_steps(config, _PREFILL.value, seed=0)
    held_out = random_steps(config, _HELD_OUT.value, seed=123)[2][::3]
    newest = held_out[:, -1].astype(np.float32)
    moving = np.abs(newest - np.median(newest, axis=0)) > MOVING_THRESHOLD
    learner = learner_lib.Learner(config, num_actions)
    updates = _UPDATES.value
    if updates is None:
        updates = schedule_lib.schedule(config).pretrain_obs
    log = results.measured_updates(
        updates,
        _MEASURE_EVERY.value,
        lambda update: dict(
            frames=update * config.pretrain_obs_batch,
            **reconstruction_errors(learner, held_out, moving),
        ),
        lambda _: learner.pretrain_vae(buffer),
    )
    result = dict(
        game=config.game,
        pretrain_obs_batch=config.pretrain_obs_batch,
        obs_lr=config.obs_lr,
        moving_fraction=float(moving.mean()),
        log=log,
    )
    results.write(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)

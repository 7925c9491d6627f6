"""How much of the reward a plain CNN predicts from the observation the world model sees.

    python -m tools.tuning.reward_from_pixels --replay=runs/boxing-3/checkpoints/replay-20.bin \
        --held_out_last=10000 --updates=3000 --out=reward-pixels.json
    # --next_frame: the control, with o_{t+1}'s newest frame, where the score has changed

The dynamics model predicts r_t at the action token from the VAE's latents z_{<=t}, the actions
and the earlier rewards (models/dynamics.py). This probe asks the same of the pixels: a CNN
regresses tanh(r_t) on o_t (the stacked frames) and a_t, trained on a replay's earlier steps and
scored on its last --held_out_last steps with the gain of `world_model_updates` (1 - MSE / the
MSE of the training steps' mean). A gain well above the world model's on the same games says its
latents lose what the reward depends on. With --next_frame the CNN also sees the frame after the
step, where the score digits change at every reward: if that control does not learn either, the
probe cannot tell anything. Both variants train and score on the same steps (those with a next
frame in the same episode).
"""

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from tools.tuning import replay_parts
from tools.tuning import results
from twm_tf.replay import file_format as replay_file

_REPLAY = flags.DEFINE_string("replay", None, "Replay file (a run's replay-*.bin).")
_HELD_OUT_LAST = flags.DEFINE_integer("held_out_last", 10_000, "Last steps measured on.")
_NEXT_FRAME = flags.DEFINE_boolean("next_frame", False, "Also input o_{t+1}'s newest frame.")
_NUM_ACTIONS = flags.DEFINE_integer("num_actions", 18, "Action count of the one-hot input.")
_UPDATES = flags.DEFINE_integer("updates", 3_000, "Adam updates.")
_BATCH = flags.DEFINE_integer("batch", 128, "Examples per update.")
_LR = flags.DEFINE_float("lr", 3e-4, "Adam learning rate.")
_MEASURE_EVERY = flags.DEFINE_integer("measure_every", 250, "Updates between measurements.")
_SEED = flags.DEFINE_integer("probe_seed", 0, "Seed of the weights and the drawn examples.")
_OUT = flags.DEFINE_string("out", None, "JSON file for the results.")


class Examples:
    """The steps of a replay file that have a next frame in their episode, split in time."""

    def __init__(self, path: str, held_out_last: int, num_actions: int, seed: int):
        header, arrays = replay_file.read(path)
        size = header["size"]
        if not 0 < held_out_last < size:
            raise ValueError(
                f"--held_out_last must be in (0, {size}), the steps of {path}; got {held_out_last}"
            )
        self.buffer = replay_parts.part_buffer(header, arrays, 0, size, seed)
        self.frames, self.stack = arrays["frames"], header["stack"]
        self.actions = arrays["actions"].astype(np.int32)
        if self.actions.max() >= num_actions:
            raise ValueError(
                f"--num_actions must exceed every action of {path}, up to {self.actions.max()}"
            )
        self.targets = np.tanh(arrays["rewards"]).astype(np.float32)
        # o_{t+1} is in t's episode unless t + 1 starts one (after a reset or at the cut).
        has_next = np.zeros(size, bool)
        has_next[:-1] = ~arrays["is_first"][1:]
        steps = np.flatnonzero(has_next)
        cut = size - held_out_last
        self.train, self.held_out = steps[steps < cut], steps[steps >= cut]
        self.mean_target = float(self.targets[self.train].mean())

    def batch(self, index: np.ndarray, next_frame: bool):
        """(pixels [n, C, H, W] uint8, actions [n] int32, targets [n] float32) of steps `index`.

        C is the frame stack, plus one with `next_frame` (o_{t+1}'s newest frame).
        """
        pixels = self.buffer.observations(index)
        if next_frame:
            pixels = np.concatenate([pixels, self.frames[index + 1][:, None]], axis=1)
        return pixels, self.actions[index], self.targets[index]


def build_model(num_actions: int, channels: int, size: int, seed: int) -> keras.Model:
    """A CNN of pixels [B, C, H, W] uint8 and actions [B] int32 to a reward [B]."""
    init = keras.initializers.GlorotUniform(seed)
    pixels = keras.Input((channels, size, size), dtype="uint8")
    actions = keras.Input((), dtype="int32")
    x = keras.ops.transpose(keras.ops.cast(pixels, "float32") / 255.0, (0, 2, 3, 1))
    for width, kernel in ((32, 4), (64, 4), (64, 3)):
        x = keras.layers.Conv2D(width, kernel, 2, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.Concatenate()(
        [keras.layers.Flatten()(x), keras.ops.one_hot(actions, num_actions)]
    )
    x = keras.layers.Dense(256, activation="relu", kernel_initializer=init)(x)
    reward = keras.layers.Dense(1, kernel_initializer=init)(x)[:, 0]
    return keras.Model([pixels, actions], reward)


def measure(model: keras.Model, examples: Examples, next_frame: bool) -> dict:
    """Held-out reward MSE, the training mean's MSE on the same steps, and the gain."""
    errors = []
    for index in np.array_split(examples.held_out, max(1, len(examples.held_out) // 1024)):
        pixels, actions, targets = examples.batch(index, next_frame)
        errors.append(np.square(model([pixels, actions]).numpy() - targets))
    targets = examples.targets[examples.held_out]
    mse = float(np.mean(np.concatenate(errors)))
    baseline = float(np.mean(np.square(targets - examples.mean_target)))
    return dict(reward_mse=mse, mean_baseline_mse=baseline, reward_gain=1.0 - mse / baseline)


def train(examples: Examples, next_frame: bool, num_actions: int, seed: int) -> list[dict]:
    """Trains the CNN for --updates, measuring it every --measure_every; returns the log."""
    channels = examples.stack + int(next_frame)
    model = build_model(num_actions, channels, examples.frames.shape[-1], seed)
    optimizer = keras.optimizers.Adam(_LR.value)

    @tf.function
    def step(pixels, actions, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model([pixels, actions], training=True) - targets))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    rng = np.random.default_rng(seed)
    return results.measured_updates(
        _UPDATES.value,
        _MEASURE_EVERY.value,
        lambda _: measure(model, examples, next_frame),
        lambda _: step(*examples.batch(rng.choice(examples.train, _BATCH.value), next_frame)),
    )


def main(argv):
    del argv
    if not (_REPLAY.value and _OUT.value):
        raise app.UsageError("--replay and --out are required")
    keras.utils.set_random_seed(_SEED.value)
    try:
        examples = Examples(_REPLAY.value, _HELD_OUT_LAST.value, _NUM_ACTIONS.value, _SEED.value)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    log = train(examples, _NEXT_FRAME.value, _NUM_ACTIONS.value, _SEED.value)
    result = dict(
        replay=_REPLAY.value,
        held_out_last=_HELD_OUT_LAST.value,
        next_frame=_NEXT_FRAME.value,
        batch=_BATCH.value,
        lr=_LR.value,
        train_steps=len(examples.train),
        held_out_steps=len(examples.held_out),
        nonzero_reward_fraction=float(np.mean(examples.targets[examples.train] != 0)),
        mean_reward=examples.mean_target,
        log=log,
    )
    results.write(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)

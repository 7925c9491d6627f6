"""Tests of the dynamics model: masking, incremental steps, relative positions, gradients."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from twm_tf import config as config_lib
from twm_tf import seeding
from twm_tf.dev import testing
from twm_tf.models import dynamics
from twm_tf.models import token_masks
from twm_tf.models import world_model_losses as losses

NUM_ACTIONS = 5


def _config(**overrides):
    return config_lib.debug(**overrides)  # 2 layers, width 32, 4 x 4 latents, memory 4 steps


def _inputs(config, batch, steps, seed=0, done_prob=0.0):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, config.latent_classes, [batch, steps, config.latent_vars])
    return dict(
        z=np.eye(config.latent_classes, dtype=np.float32)[classes],
        actions=rng.integers(0, NUM_ACTIONS, [batch, steps]).astype(np.int32),
        rewards=np.tanh(rng.standard_normal([batch, steps])).astype(np.float32),
        dones=rng.random([batch, steps]) < done_prob,
    )


def _changed(inputs, name, index, seed=1):
    """A copy of `inputs` with `name` redrawn at [:, index]."""
    rng = np.random.default_rng(seed)
    inputs = {k: v.copy() for k, v in inputs.items()}
    if name == "z":
        inputs["z"][:, index] = inputs["z"][:, index, :, ::-1]  # another one-hot per variable
    elif name == "actions":
        inputs["actions"][:, index] = (inputs["actions"][:, index] + 1) % NUM_ACTIONS
    else:
        inputs["rewards"][:, index] = rng.uniform(-1, 1, inputs["rewards"][:, index].shape)
    return inputs


def _predictions(output):
    """[..., V * C + 2]: every prediction of a DynamicsOutput in one tensor (eager or graph)."""
    logits_shape = tf.concat([tf.shape(output.reward), [-1]], axis=0)
    return tf.concat(
        [
            tf.reshape(output.next_logits, logits_shape),
            output.reward[..., None],
            output.discount_logit[..., None],
        ],
        axis=-1,
    )


def _run_steps(model, inputs, cache=None, start=0):
    """Steps through inputs[:, start:], resetting at step 0 and after every done."""
    batch, steps = inputs["actions"].shape
    cache = model.initial_cache(batch) if cache is None else cache
    outputs = []
    for t in range(start, steps):
        reset = np.ones(batch, bool) if t == 0 else inputs["dones"][:, t - 1]
        prev_reward = inputs["rewards"][:, t - 1] if t else np.zeros(batch, np.float32)
        output, cache = model.step(
            cache, inputs["z"][:, t], inputs["actions"][:, t], prev_reward, tf.constant(reset)
        )
        outputs.append(_predictions(output))
    return np.stack(outputs, axis=1), cache


class DynamicsModelTest(testing.TestCase):
    def test_paper_parameter_count(self):
        model = dynamics.DynamicsModel.from_twm_config(config_lib.atari100k(), num_actions=18)
        self.assertEqual(model.count_params(), 10_782_466)

    def test_shapes_and_initial_discount(self):
        config = _config()
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=3, steps=6)
        output = model(**inputs)
        self.assertEqual(output.next_logits.shape, (3, 6, 4, 4))
        self.assertEqual(output.reward.shape, (3, 6))
        self.assertEqual(output.discount_logit.shape, (3, 6))
        self.assertIsNone(output.attention)
        bias = model.discount_head.final.bias.numpy()
        self.assertAllClose(1 / (1 + np.exp(-bias)), [config.gamma])

    def test_from_config_equals_explicit_hyperparameters(self):
        config = _config(
            latent_vars=3,
            latent_classes=5,
            dyn_layers=1,
            dyn_width=8,
            dyn_heads=2,
            dyn_ffn=12,
            dyn_dropout=0.2,
            memory_steps=3,
            latent_head=(6, 7),
            scalar_head=(5,),
            reward_input=False,
            gamma=0.9,
        )
        with seeding.keras_weights(1):
            model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        with seeding.keras_weights(1):
            explicit = dynamics.DynamicsModel(
                num_actions=NUM_ACTIONS,
                latent_vars=3,
                latent_classes=5,
                num_layers=1,
                width=8,
                heads=2,
                ffn=12,
                dropout=0.2,
                memory_steps=3,
                latent_head=(6, 7),
                scalar_head=(5,),
                reward_input=False,
                gamma=0.9,
            )
        self.assertEqual((explicit.tokens_per_step, explicit.cache_blocks), (2, 3))
        self.assertIsNone(explicit.reward_embedding)
        self.assertEqual([layer.units for layer in explicit.latent_head.hidden], [6, 7])
        self.assertEqual(explicit.transformer.blocks[0].dropout.rate, 0.2)
        self.assertLen(model.weights, len(explicit.weights))
        for a, b in zip(model.weights, explicit.weights, strict=True):
            # Paths below the model's automatic name (dynamics_model_<n>).
            self.assertEqual(a.path.split("/", 1)[1], b.path.split("/", 1)[1])
            self.assertAllEqual(a, b)

    def test_invalid_inputs_raise(self):
        with self.assertRaisesRegex(ValueError, "num_actions"):
            dynamics.DynamicsModel.from_twm_config(_config(), 0)
        model = dynamics.DynamicsModel.from_twm_config(_config(), NUM_ACTIONS)
        inputs = _inputs(_config(), batch=1, steps=2)
        inputs["z"] = inputs["z"].reshape(1, 2, 16)
        with self.assertRaisesRegex(ValueError, "latent_vars"):
            model(**inputs)

    @parameterized.product(name=["z", "actions", "rewards"], changed_step=[1, 3, 5])
    def test_causality(self, name, changed_step):
        config = _config()
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=6)
        before = _predictions(model(**inputs))
        after = _predictions(model(**_changed(inputs, name, changed_step)))
        # r_t enters after a_t, so it reaches h_{t+1} but never its own prediction h_t.
        first_affected = changed_step + 1 if name == "rewards" else changed_step
        self.assertAllClose(before[:, :first_affected], after[:, :first_affected], atol=1e-6)
        if first_affected < 6:
            self.assertGreater(
                np.abs(before[:, first_affected] - after[:, first_affected]).max(), 1e-4
            )

    @parameterized.parameters(
        # batch, steps, memory_steps, reward_input, done_prob
        (1, 3, 4, True, 0.0),
        (3, 12, 4, True, 0.2),
        (2, 9, 1, True, 0.3),
        (2, 11, 2, False, 0.2),
        (4, 7, 8, True, 0.3),
    )
    def test_step_matches_call(self, batch, steps, memory_steps, reward_input, done_prob):
        config = _config(memory_steps=memory_steps, reward_input=reward_input)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch, steps, done_prob=done_prob)
        expected = _predictions(model(**inputs))
        stepped, cache = _run_steps(model, inputs)
        self.assertAllClose(stepped, expected, atol=2e-5)
        for blocks in (*cache.keys, *cache.values):
            self.assertLen(blocks, memory_steps + model.tokens_per_step - 2)
            for block in blocks:
                self.assertEqual(block.shape, (2, batch, model.tokens_per_step, 16))  # heads lead

    @parameterized.parameters((1, 2, 0.0), (3, 4, 0.3), (7, 4, 0.2), (2, 1, 0.3))
    def test_prefill_then_step_matches_call(self, context, memory_steps, done_prob):
        config = _config(memory_steps=memory_steps)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=3, steps=context + 5, done_prob=done_prob)
        expected = _predictions(model(**inputs))
        head = {k: v[:, :context] for k, v in inputs.items()}
        prefilled, cache = model.prefill(**head)
        self.assertAllClose(_predictions(prefilled), expected[:, :context], atol=1e-6)
        # A short window gives a short cache, which the steps grow up to cache_blocks.
        self.assertLen(cache.keys[0], min(context, model.cache_blocks))
        self.assertEqual(cache.valid.shape, (3, 3 * min(context, model.cache_blocks)))
        stepped, cache = _run_steps(model, inputs, cache, start=context)
        self.assertAllClose(stepped, expected[:, context:], atol=2e-5)
        self.assertLen(cache.keys[0], min(context + 5, model.cache_blocks))

    def test_relative_positions_ignore_absolute_offset(self):
        # Absolute positions would make the same tokens compute differently after a prefix.
        config = _config(memory_steps=2)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=8)
        full = _predictions(model(**inputs))
        # Each layer reaches memory_steps further back: h_t depends on steps t - 4 .. t only.
        reach = config.memory_steps * config.dyn_layers
        for end in range(reach, 8):
            window = {k: v[:, end - reach : end + 1] for k, v in inputs.items()}
            self.assertAllClose(_predictions(model(**window))[:, -1], full[:, end], atol=1e-5)
        # A junk prefix cut off by a done shifts every token by 3 * 5 positions and nothing else.
        junk = _inputs(config, batch=2, steps=5, seed=7)
        junk["dones"][:, -1] = True
        joined = {k: np.concatenate([junk[k], inputs[k]], axis=1) for k in inputs}
        self.assertAllClose(_predictions(model(**joined))[:, 5:], full, atol=1e-5)
        # In steps: a reset after junk content in the cache equals a fresh start.
        _, junk_cache = _run_steps(model, junk)
        self.assertAllClose(_run_steps(model, inputs, junk_cache)[0], full, atol=2e-5)

    @parameterized.parameters("z", "actions", "rewards")
    def test_stop_mask_blocks_attention_across_dones(self, name):
        config = _config(memory_steps=8)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=7)
        inputs["dones"][:, 3] = True
        before = _predictions(model(**inputs))
        changed = _changed(inputs, name, 2) if name != "rewards" else _changed(inputs, name, 3)
        after = _predictions(model(**changed))
        self.assertAllClose(before[:, 4:], after[:, 4:], atol=1e-6)
        if name != "rewards":  # sanity: the change matters inside its own episode
            self.assertGreater(np.abs(before[:, 2:4] - after[:, 2:4]).max(), 1e-4)

    @parameterized.parameters(True, False)
    def test_reward_input_ablation(self, reward_input):
        config = _config(reward_input=reward_input)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=6)
        other = {**inputs, "rewards": -inputs["rewards"]}
        difference = np.abs(_predictions(model(**inputs)) - _predictions(model(**other))).max()
        stepped = np.abs(_run_steps(model, inputs)[0] - _run_steps(model, other)[0]).max()
        if reward_input:
            self.assertGreater(min(difference, stepped), 1e-4)
        else:
            self.assertEqual((difference, stepped), (0, 0))
            self.assertEqual(model.tokens_per_step, 2)

    def test_attention_weights(self):
        config = _config(memory_steps=2)
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=6, done_prob=0.3)
        attention = model(**inputs, return_attention=True).attention
        mask = token_masks.window_mask(inputs["dones"], 2, 3)[:, None]  # [B, 1, N, N]
        self.assertLen(attention, config.dyn_layers)
        for weights in attention:
            self.assertEqual(weights.shape, (2, config.dyn_heads, 17, 17))
            self.assertAllClose(tf.reduce_sum(weights, -1), np.ones([2, config.dyn_heads, 17]))
            self.assertAllEqual(np.where(mask, 0.0, weights), np.zeros(weights.shape))
        cache = model.initial_cache(2)
        output, cache = model.step(
            cache,
            inputs["z"][:, 0],
            inputs["actions"][:, 0],
            np.zeros(2, np.float32),
            tf.ones([2], tf.bool),
            return_attention=True,
        )
        for weights in output.attention:
            self.assertEqual(weights.shape, (2, config.dyn_heads, 3, model.cache_length + 3))
            # After a reset only z_0 and a_0 (the last two keys) carry weight for z_0 and a_0.
            self.assertAllEqual(weights[:, :, 1:, :-2], np.zeros_like(weights[:, :, 1:, :-2]))
            self.assertAllClose(tf.reduce_sum(weights, -1), np.ones([2, config.dyn_heads, 3]))

    def test_mixed_bfloat16_policy(self):
        # bfloat16 compute (AMX on CPU) with float32 variables and outputs; step still matches
        # the full forward to bfloat16 precision.
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            config = _config()
            model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
            inputs = _inputs(config, batch=2, steps=6, done_prob=0.3)
            full = model(**inputs)
            stepped, cache = _run_steps(model, inputs)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        for output in (full.next_logits, full.reward, full.discount_logit):
            self.assertEqual(output.dtype, tf.float32)
        self.assertEqual(cache.keys[0][0].dtype, tf.bfloat16)
        self.assertAllClose(stepped, _predictions(full), atol=0.1, rtol=0.05)
        self.assertTrue(all(v.dtype == "float32" for v in model.trainable_variables))

    def test_step_in_while_loop_under_tf_function(self):
        config = _config()
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=6, done_prob=0.3)
        expected, _ = _run_steps(model, inputs)

        @tf.function
        def rollout(z, actions, rewards, resets):
            def body(t, cache, outputs):
                prev_reward = rewards[:, tf.maximum(t - 1, 0)]
                output, cache = model.step(cache, z[:, t], actions[:, t], prev_reward, resets[:, t])
                return t + 1, cache, outputs.write(t, _predictions(output))

            outputs = tf.TensorArray(tf.float32, size=tf.shape(actions)[1])
            _, _, outputs = tf.while_loop(
                lambda t, *_: t < tf.shape(actions)[1],
                body,
                (tf.constant(0), model.initial_cache(tf.shape(actions)[0]), outputs),
            )
            return tf.transpose(outputs.stack(), [1, 0, 2])

        resets = np.concatenate([np.ones([2, 1], bool), inputs["dones"][:, :-1]], axis=1)
        args = (inputs["z"], inputs["actions"], inputs["rewards"], resets)
        self.assertAllClose(rollout(*args), expected, atol=2e-5)
        other = _inputs(config, batch=2, steps=6, seed=3)
        rollout(other["z"], other["actions"], other["rewards"], resets)
        self.assertEqual(rollout.experimental_get_tracing_count(), 1)

        step = tf.function(model.step)
        cache = model.initial_cache(2)
        for t in range(4):
            _, cache = step(
                cache,
                inputs["z"][:, t],
                inputs["actions"][:, t],
                inputs["rewards"][:, t],
                tf.constant([t == 0, False]),
            )
        self.assertEqual(step.experimental_get_tracing_count(), 1)


class DynamicsLossGradientTest(testing.TestCase):
    def test_latent_gradient_reaches_head_and_skips_masked_steps(self):
        config = _config(beta1=0.0, beta2=0.0)  # total = the latent term alone
        model = dynamics.DynamicsModel.from_twm_config(config, NUM_ACTIONS)
        inputs = _inputs(config, batch=2, steps=5)
        inputs["dones"][:, 2] = True
        target_logits = np.random.default_rng(0).standard_normal([2, 5, 4, 4]).astype(np.float32)
        terminated = inputs["dones"]
        with tf.GradientTape(persistent=True) as tape:
            output = model(**inputs, training=True)
            total, metrics = losses.dynamics_loss(
                output, target_logits, inputs["rewards"], terminated, inputs["dones"], config
            )
        self.assertAllClose(total, metrics["dyn/latent"])
        head_grads = tape.gradient(total, model.latent_head.trainable_variables)
        self.assertGreater(min(float(tf.norm(g)) for g in head_grads), 0.0)
        embed_grad = tape.gradient(total, model.latent_embedding.kernel)
        self.assertGreater(float(tf.norm(embed_grad)), 0.0)
        logits_grad = tape.gradient(total, output.next_logits).numpy()
        self.assertAllEqual(logits_grad[:, 2], np.zeros([2, 4, 4]))
        self.assertGreater(np.abs(logits_grad[:, [0, 1, 3, 4]]).min(), 0.0)
        # Targets of masked steps do not enter the loss.
        other_targets = target_logits.copy()
        other_targets[:, 2] += 5.0
        other, _ = losses.dynamics_loss(
            output, other_targets, inputs["rewards"], terminated, inputs["dones"], config
        )
        self.assertAllClose(other, total)


if __name__ == "__main__":
    absltest.main()

"""Data-parallel train steps over several devices with tf.distribute.MirroredStrategy.

With config.replicas = R > 1, every variable is mirrored on R devices (the GPUs if there are at
least R, else R logical CPUs) and a train step splits its batch into R equal shards: replica r
computes the gradients of its shard's mean loss with its own seed (`replica_seed`), the
gradients are averaged across replicas, and the optimizers apply the average once, after the
clip and the non-finite guard have seen it. For the losses that are plain means over the batch
(reconstruction, reward, discount, critic, policy gradient) this is the update on the global
batch; masked means and the entropy hinges are taken per shard.
"""

import contextlib

import tensorflow as tf


def strategy(replicas: int) -> tf.distribute.Strategy | None:
    """The MirroredStrategy of `replicas` devices, or None for replicas = 1.

    On a machine without R GPUs the first CPU is split into R logical devices, which must happen
    before TensorFlow initializes its devices.

    Raises:
      ValueError: naming config.replicas when the devices cannot be had.
    """
    if replicas == 1:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(replicas)])
    cpus = tf.config.list_physical_devices("CPU")
    try:  # Only possible before TensorFlow initializes (listing logical devices does that).
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError:
        available = len(tf.config.list_logical_devices("CPU"))
        if available < replicas:
            raise ValueError(
                f"config.replicas={replicas} needs {replicas} GPUs or logical CPUs; TensorFlow "
                f"was initialized with {len(gpus)} GPUs and {available} CPUs"
            ) from None
    # Cross-device reductions between logical CPUs are plain host copies.
    return tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(replicas)],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )


class Replicas:
    """Runs a step's per-replica part on every replica and averages it; with one replica, the
    same code runs directly (shard and replica_seed are then identities)."""

    def __init__(self, replicas: int):
        self.strategy = strategy(replicas)

    def scope(self):
        """Where the variables must be created: the strategy's scope, or a null context."""
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def run(self, fn, *args):
        """fn(*args) on every replica (per-replica results), or once."""
        return self.strategy.run(fn, args=args) if self.strategy else fn(*args)

    def mean(self, per_replica):
        """The cross-replica mean of every tensor in a structure of per-replica values."""
        if self.strategy is None:
            return per_replica
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None),
            per_replica,
        )


def shard(x: tf.Tensor) -> tf.Tensor:
    """This replica's equal part of `x` along its first axis (all of it with one replica)."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    size = x.shape[0] // replicas
    return x[context.replica_id_in_sync_group * size :][:size]


def replica_seed(seed: tf.Tensor) -> tf.Tensor:
    """A [2] seed of this replica from the step's `seed` (`seed` itself with one replica)."""
    context = tf.distribute.get_replica_context()
    if context.num_replicas_in_sync == 1:
        return seed
    return tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)

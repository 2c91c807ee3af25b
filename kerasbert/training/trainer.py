"""The in-graph half of the training loop: `steps_per_loop` training steps
per `tf.function` call (Orbit's `StandardTrainer`), evaluation and
prediction."""

import keras
import numpy as np
import tensorflow as tf

# Steps per `tf.function` call when none is given, by device kind: on a CPU
# a step's arithmetic dwarfs the call's overhead; an accelerator waits for
# the host between calls.
DEFAULT_STEPS_PER_LOOP = {"CPU": 1, "GPU": 32, "TPU": 100}


def default_steps_per_loop(strategy):
    """`DEFAULT_STEPS_PER_LOOP` for the kind of device `strategy` runs on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return DEFAULT_STEPS_PER_LOOP["TPU"]
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, NotImplementedError, AttributeError):  # the default strategy
        devices = [d.name for d in tf.config.list_logical_devices()]
    gpu = any("GPU" in device.upper() for device in devices)
    return DEFAULT_STEPS_PER_LOOP["GPU" if gpu else "CPU"]


class Trainer:
    """Runs a compiled Keras model's training steps, several per call.

    A training step does what Keras' `train_step` does (the model's
    `compute_loss`, `compute_metrics`, optimizer and loss scaling) under
    `strategy.run`. Under several replicas the gradient is summed across
    replicas before clipping and before float16 loss scaling decides to skip
    a step (Keras clips and checks each replica's own gradient), so a
    multi-replica step is the single-device step on the global batch, and
    every worker skips an overflowing step together.

    `train(iterator, steps)` runs `steps` steps in one `tf.function` call (a
    `tf.while_loop` over the distributed iterator, as Orbit's
    `create_tf_while_loop_fn`); the count is a tensor, so any count reuses
    the one trace, and the steps are the same operations whatever the count:
    the results do not depend on how the steps are grouped into calls.
    Nothing comes back to the host: metrics are read with
    `metric_values()`.

    A model that overrides `train_step` is refused: its step would not be
    the one run here.

    Args:
        model: a compiled `keras.Model`, built inside `strategy.scope()`.
        strategy: `tf.distribute.Strategy`.
        jit_compile: bool. Compile each step with XLA.
    """

    def __init__(self, model, strategy, *, jit_compile=False):
        if type(model).train_step is not keras.Model.train_step:
            raise ValueError(
                f"{type(model).__name__} overrides `train_step`, which kerasbert's training "
                "loop does not call (it runs its own step, to sum gradients across replicas "
                "before clipping). Override `compute_loss` instead, or train with `fit`."
            )
        self.model = model
        self.strategy = strategy
        self.jit_compile = jit_compile
        self._loss_metric = next((m for m in model.metrics if m.name == "loss"), None)
        self._functions = {}

    # === Building ===

    def build(self, element_spec):
        """Create every variable before tracing: the optimizer's slots, and
        the compiled loss and metrics (built eagerly on a batch of ones
        shaped like `element_spec`, then reset), so that a checkpoint can be
        restored into them before the first step. Reading a real batch
        instead would start a second iterator, whose prefetching races the
        real one for the input pipeline's random state."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            _ones_like_specs(element_spec)
        )
        with self.strategy.scope():
            y_pred = self.model(x, training=False)
            self.model.compute_loss(x, y, y_pred, sample_weight, training=False)
            self.model.compute_metrics(x, y, y_pred, sample_weight)
            self.model.reset_metrics()
            self.model.optimizer.build(self.model.trainable_variables)
        self._loss_metric = next((m for m in self.model.metrics if m.name == "loss"), None)

    # === Steps ===

    def train(self, iterator, steps):
        """Run `steps` training steps on batches of the distributed
        `iterator`, in one call."""
        key = ("train", repr(iterator.element_spec))
        if key not in self._functions:
            self._functions[key] = self._loop_function()
        self._functions[key](iterator, tf.constant(steps, tf.int32))

    def _loop_function(self):
        # The step is its own function (XLA-compiled with `jit_compile`); the
        # loop calls it on the iterator's batches, whose shapes are the
        # stream's own (batch and length unknown): a graph specialised to
        # the shapes that happen to come first would compute in another
        # order, and a resumed run, which sees other batches first, would
        # drift from an uninterrupted one by rounding.
        step = tf.function(self._train_step, jit_compile=self.jit_compile,
                           reduce_retracing=True)

        @tf.function
        def loop(iterator, steps):
            for _ in tf.range(steps):
                self.strategy.run(step, args=(next(iterator),))

        return loop

    def _train_step(self, data):
        """One replica's step: Keras' `train_step`, except that under several
        replicas the gradient is summed before clipping and loss scaling."""
        model, optimizer = self.model, self.model.optimizer
        replicas = self.strategy.num_replicas_in_sync
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], tf.float32)
        # The share of the global batch on this replica: Keras' losses divide
        # a replica's mean by the replica count, which weighs an uneven split
        # (a bucket's last, partial batch) wrongly; rescaled, the replicas'
        # losses sum to the global batch's mean.
        share = 1.0
        if replicas > 1:
            global_batch_size = tf.distribute.get_replica_context().all_reduce("SUM", batch_size)
            share = replicas * batch_size / global_batch_size
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            replica_loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
            # A replica can get no example (a bucket's last batch smaller than
            # the replica count): its mean is 0/0, and weighs nothing.
            loss = tf.math.multiply_no_nan(replica_loss, tf.cast(share, replica_loss.dtype))
            scaled_loss = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        if self._sum_before_apply():
            gradients = self._summed_and_clipped(gradients, optimizer.scale_loss(1.0))
        optimizer.apply(gradients, variables)
        if self._loss_metric is not None:
            # This replica's mean loss, weighted by its examples.
            mean = tf.where(batch_size > 0, replica_loss * replicas, tf.zeros_like(replica_loss))
            self._loss_metric.update_state(mean, sample_weight=batch_size)
        model.compute_metrics(x, y, y_pred, sample_weight)

    def _clipping(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        return optimizer.global_clipnorm, optimizer.clipnorm, optimizer.clipvalue

    def _sum_before_apply(self):
        if self.strategy.num_replicas_in_sync == 1:
            return False
        loss_scaling = isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer)
        return loss_scaling or any(c is not None for c in self._clipping())

    def _summed_and_clipped(self, gradients, loss_scale):
        # Sum the replicas' gradients, clip the sum as one device would, and
        # hand every replica 1/N of it: the optimizer's own all-reduce then
        # rebuilds the clipped sum, and its own clipping (on 1/N of a clipped
        # gradient) and its float16 finiteness check see the same values on
        # every replica.
        replicas = self.strategy.num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        present = [i for i, g in enumerate(gradients) if g is not None]
        summed = context.all_reduce(
            "SUM", [tf.convert_to_tensor(gradients[i]) for i in present]
        )
        summed = [g / tf.cast(loss_scale, g.dtype) for g in summed]
        global_clipnorm, clipnorm, clipvalue = self._clipping()
        if global_clipnorm is not None:
            summed, _ = tf.clip_by_global_norm(summed, global_clipnorm)
        if clipnorm is not None:
            summed = [tf.clip_by_norm(g, clipnorm) for g in summed]
        if clipvalue is not None:
            summed = [tf.clip_by_value(g, -clipvalue, clipvalue) for g in summed]
        result = list(gradients)
        for i, g in zip(present, summed):
            result[i] = g * tf.cast(loss_scale / replicas, g.dtype)
        return result

    # === Metrics ===

    def metric_values(self):
        """The model's running metrics, as floats: a read to the host (and,
        under several workers, a collective every worker must join)."""
        return {name: float(value) for name, value in self.model.get_metrics_result().items()}

    # === Evaluation and prediction ===

    def evaluate(self, dataset):
        """The model's loss and metrics over a finite dataset, as floats."""
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        key = ("test", repr(distributed.element_spec))
        if key not in self._functions:
            step = tf.function(self.model.test_step, jit_compile=self.jit_compile,
                               reduce_retracing=True)
            self._functions[key] = tf.function(
                lambda data: self.strategy.run(step, args=(data,)),
                input_signature=[distributed.element_spec],
            )
        test_function = self._functions[key]
        self.model.reset_metrics()
        for data in distributed:
            test_function(data)
        values = self.metric_values()
        self.model.reset_metrics()
        return values

    def predicted_classes(self, dataset):
        """The model's most probable class for each example of a finite
        dataset of `(x, y)` batches, in the dataset's order, as a numpy array.

        Runs on the strategy's default device, outside replica context, so
        that the order of the examples is the dataset's.
        """
        key = ("predicted_classes", repr(dataset.element_spec))
        if key not in self._functions:
            self._functions[key] = tf.function(
                lambda x, y: tf.argmax(self.model(x, training=False), axis=-1),
                input_signature=list(dataset.element_spec)[:2],
            )
        predict = self._functions[key]
        classes = [predict(*keras.utils.unpack_x_y_sample_weight(batch)[:2]).numpy()
                   for batch in dataset]
        return np.concatenate(classes) if classes else np.zeros([0], np.int64)


def _ones_like_specs(element_spec):
    # All ones is a valid input everywhere: real tokens (padding mask 1),
    # token and segment id 1, class 1, position 1, weight 1. Unknown sizes
    # become 2, except the batch size, which is the one any spec knows.
    specs = tf.nest.flatten(element_spec)
    known = [spec.shape[0] for spec in specs if spec.shape.rank and spec.shape[0] is not None]
    batch_size = known[0] if known else 2

    def ones(spec):
        shape = [2 if dim is None else dim for dim in spec.shape]
        if shape and spec.shape[0] is None:
            shape[0] = batch_size
        return tf.ones(shape, spec.dtype)

    return tf.nest.map_structure(ones, element_spec)

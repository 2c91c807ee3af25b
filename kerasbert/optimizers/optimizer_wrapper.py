"""The base of optimizers that change how an inner optimizer updates variables."""

import keras


class OptimizerWrapper(keras.optimizers.Optimizer):
    """An optimizer that steps through an inner Keras 3 optimizer.

    As `keras.optimizers.LossScaleOptimizer` does, a wrapper holds an
    `inner_optimizer` and serializes it as part of its own config; unlike it,
    the wrapper runs Keras' `apply` itself — gradient filtering, clipping,
    `tf.distribute` all-reduce and the per-replica update, all owned by
    Keras — and hands each variable to `inner_optimizer.update_step`, so the
    inner optimizer keeps its own update rule (Adam's moments, `FusedAdam`'s
    one-kernel update). A subclass overrides `update_step` (and `build`,
    `get_config`) to change what the inner update is given, e.g. the
    learning rate, per variable.

    The wrapper has no state of its own: it counts steps in the inner
    optimizer's `iterations` (which Adam's bias correction reads), reads and
    sets the inner optimizer's `learning_rate` (a float or a schedule), and
    its `variables` are the inner optimizer's, which `.keras` saving stores
    with the inner optimizer. Clipping (`clipnorm`, `global_clipnorm`,
    `clipvalue`) and `loss_scale_factor` are the inner optimizer's settings,
    applied once, by the wrapper. Decoupled weight decay is the inner
    optimizer's too: `weight_decay` and `exclude_from_weight_decay` are
    forwarded, and by default it is applied as the inner optimizer would
    (`LayerwiseDecay` scales it per variable instead).

    Wrappers nest (`LazyUpdates(LayerwiseDecay(FusedAdam(...)))`), and loss
    scaling goes outside them all: `LossScaleOptimizer(wrapper)`, which
    `Model.compile` builds under a `mixed_float16` policy. The inner
    optimizer must not be built yet, nor use `use_ema` or
    `gradient_accumulation_steps` (the wrapper would step past them).

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`. The optimizer whose
            update rule is used, not yet built. It is wrapped, not copied.
        name: str or None. The wrapper's name. Defaults to the snake-case
            class name.

    Examples:
    ```python
    class HalfRate(kerasbert.optimizers.OptimizerWrapper):
        def update_step(self, gradient, variable, learning_rate):
            self.inner_optimizer.update_step(gradient, variable, learning_rate * 0.5)

    variable = keras.Variable([1.0, 2.0])
    optimizer = HalfRate(keras.optimizers.SGD(0.1))
    optimizer.apply([tf.constant([1.0, 1.0])], [variable])
    variable.numpy()  # [0.95, 1.95]
    int(optimizer.iterations)  # 1, counted in the inner SGD
    ```
    """

    def __init__(self, inner_optimizer, name=None):
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                "`inner_optimizer` must be a Keras optimizer instance. "
                f"Received: {inner_optimizer!r}"
            )
        if isinstance(inner_optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "Wrap the optimizer inside the loss scaling, not the loss scaling: "
                f"`LossScaleOptimizer({type(self).__name__}(optimizer))`. "
                f"Received: {inner_optimizer!r}"
            )
        if inner_optimizer.built:
            raise ValueError(
                "Wrap the optimizer before it is built (before training starts). "
                f"Received the built {inner_optimizer.name!r}."
            )
        if inner_optimizer.use_ema or inner_optimizer.gradient_accumulation_steps:
            raise ValueError(
                f"{type(self).__name__} does not support an inner optimizer with "
                "`use_ema` or `gradient_accumulation_steps`. Received: use_ema="
                f"{inner_optimizer.use_ema}, gradient_accumulation_steps="
                f"{inner_optimizer.gradient_accumulation_steps}."
            )
        super().__init__(
            learning_rate=0.0,
            weight_decay=inner_optimizer.weight_decay,
            clipnorm=inner_optimizer.clipnorm,
            clipvalue=inner_optimizer.clipvalue,
            global_clipnorm=inner_optimizer.global_clipnorm,
            loss_scale_factor=inner_optimizer.loss_scale_factor,
            name=name,
        )
        self.inner_optimizer = inner_optimizer
        # `Optimizer.__init__` made a step counter and a learning rate for the
        # wrapper; it steps the inner optimizer's counter instead (Adam's bias
        # correction and the rate schedule read it), which is saved with the
        # inner optimizer's variables.
        self._untrack_variable(self._iterations)
        self._untrack_variable(self._learning_rate)
        self._iterations = inner_optimizer._iterations
        self._untrack_variable(self._iterations)
        # Untracking removed items from the tracked variable list, which a
        # SavedModel refuses to save (only appended-to lists are); continue
        # with a fresh list of what remains.
        predicate = self._tracker.config["variables"][0]
        self._variables = list(self._variables)
        self._tracker.config["variables"] = (predicate, self._variables)

    def build(self, var_list):
        super().build(var_list)
        # The inner optimizer's variable paths do not depend on whether it is
        # built inside the wrapper's `apply` or by a direct `build` call.
        with keras.name_scope(
            self.inner_optimizer.name, caller=self.inner_optimizer, override_parent=""
        ):
            self.inner_optimizer.build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        self.inner_optimizer.update_step(gradient, variable, learning_rate)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    def set_weights(self, weights):
        own = len(self._variables)
        super().set_weights(weights[:own])
        self.inner_optimizer.set_weights(weights[own:])

    def save_own_variables(self, store):
        # Only the wrapper's own variables: Keras saves the inner optimizer,
        # an attribute, on its own.
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            variable.assign(store[str(i)])

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def _use_weight_decay(self, variable):
        return self.inner_optimizer._use_weight_decay(variable)

    def _apply_weight_decay(self, variables):
        self.inner_optimizer._apply_weight_decay(variables)

    def get_config(self):
        # Not `super().get_config()`: the settings are the inner optimizer's.
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner_optimizer = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner_optimizer, **config)


def wrapped_optimizers(optimizer):
    """`optimizer` and the optimizers it wraps, outermost first."""
    chain = [optimizer]
    while hasattr(chain[-1], "inner_optimizer"):
        chain.append(chain[-1].inner_optimizer)
    return chain

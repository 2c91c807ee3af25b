"""Update chosen variables only on steps that give them a gradient."""

import re

import keras
import tensorflow as tf

from kerasbert.optimizers.optimizer_wrapper import OptimizerWrapper


@keras.saving.register_keras_serializable(package="kerasbert")
class LazyUpdates(OptimizerWrapper):
    """Skip the update of chosen variables whose gradient is all zeros.

    In multi-task training a batch of task A gives task B's head an exactly
    zero gradient. Keras' Adam would still move B's head by its momentum;
    PyTorch's Adam, which the paper used, skips parameters without a
    gradient. `LazyUpdates` wraps any Keras 3 optimizer: variables matching
    `lazy_variables` (regexes on variable paths) are updated, and their
    optimizer state advanced, only on steps where their gradient has a
    non-zero entry; every other variable is updated as `inner_optimizer`
    would. Decoupled weight decay, which Keras applies before the update
    step, still applies on every step — except around a `LayerwiseDecay`
    (`LazyUpdates(LayerwiseDecay(...))`), which decays a variable as part of
    its update. `FusedAdam(sparse_variables=...)` is the row-level
    counterpart for an embedding table.

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`. The optimizer to
            wrap, not yet built; it may be a `LayerwiseDecay`, and a
            `LayerwiseDecay` may wrap a `LazyUpdates`.
        lazy_variables: list of str or None. Regexes (`re.search`) on
            variable paths, e.g. the task heads of a `MultiTaskClassifier`
            (`r"_logits/"`). Defaults to `None`, no lazy variable.
        name: str or None. The wrapper's name.

    Examples:
    ```python
    a = keras.Variable([1.0, 1.0], name="a")
    head = keras.Variable([1.0, 1.0], name="head")
    optimizer = kerasbert.optimizers.LazyUpdates(
        keras.optimizers.Adam(0.1), lazy_variables=[r"^head$"]
    )
    optimizer.apply([tf.ones(2), tf.ones(2)], [a, head])
    optimizer.apply([tf.ones(2), tf.zeros(2)], [a, head])
    head.numpy()  # [0.9, 0.9]: one step only, no move on momentum
    ```
    """

    def __init__(self, inner_optimizer, lazy_variables=None, name=None):
        if lazy_variables is not None and (
                not isinstance(lazy_variables, (list, tuple))
                or not all(isinstance(p, str) for p in lazy_variables)):
            raise ValueError(
                f"`lazy_variables` must be a list of regexes (str). Received: {lazy_variables!r}"
            )
        try:
            patterns = [re.compile(p) for p in lazy_variables or ()]
        except re.error as error:
            raise ValueError(f"`lazy_variables` holds an invalid regex: {error}") from None
        super().__init__(inner_optimizer, name=name)
        self.lazy_variables = list(lazy_variables or [])
        self._lazy_patterns = patterns

    def build(self, var_list):
        super().build(var_list)
        self._variable_is_lazy = [
            any(p.search(v.path) for p in self._lazy_patterns) for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        inner_update = self.inner_optimizer.update_step
        if not self._variable_is_lazy[self._get_variable_index(variable)]:
            return inner_update(gradient, variable, learning_rate)

        def update():
            inner_update(gradient, variable, learning_rate)
            return tf.constant(True)

        tf.cond(
            tf.reduce_any(tf.not_equal(gradient, 0)), update, lambda: tf.constant(False)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"lazy_variables": self.lazy_variables})
        return config


def lazy_updates(optimizer, lazy_variables):
    """Update the matching variables only on steps that give them a gradient.

    Args:
        optimizer: a Keras 3 optimizer instance, not yet built.
        lazy_variables: list of str. Regexes on variable paths, e.g. the
            task heads of a `MultiTaskClassifier` (`r"^[^/]+_logits/"`).

    Returns:
        A `LazyUpdates` wrapping `optimizer` (which is not copied). It can
        be wrapped further by `layerwise_decay`, and wrap a
        `LayerwiseDecay`.

    Examples:
    ```python
    optimizer = kerasbert.optimizers.lazy_updates(
        keras.optimizers.Adam(2e-5), lazy_variables=[r"_logits/"]
    )
    ```
    """
    return LazyUpdates(optimizer, lazy_variables=lazy_variables)

"""Update chosen variables only on steps that give them a gradient."""

import re

import tensorflow as tf

from kerasbert.optimizers.derived import BUILTIN_OPTIMIZERS
from kerasbert.optimizers.derived import derive
from kerasbert.optimizers.derived import derived_class


class LazyUpdates:
    """The base of every lazy-update optimizer: skip the update of chosen
    variables whose gradient is all zeros.

    Not built directly: `lazy_updates(optimizer, lazy_variables)` returns an
    optimizer of the derived class `Lazy<OptimizerClass>`, an instance of
    this class.

    In multi-task training a batch of task A gives task B's head an exactly
    zero gradient. Keras' Adam would still move B's head by its momentum;
    PyTorch's Adam, which the paper used, skips parameters without a
    gradient. Variables matching `lazy_variables` (regexes on variable
    paths) are updated, and their optimizer state advanced, only on steps
    where their gradient has a non-zero entry. Decoupled weight decay, which
    Keras applies before the update step, still applies on every step.
    """

    def __init__(self, *args, lazy_variables=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_variables = list(lazy_variables or [])

    def build(self, var_list):
        super().build(var_list)
        patterns = [re.compile(p) for p in self.lazy_variables]
        self._variable_is_lazy = [any(p.search(v.path) for p in patterns) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        if not self._variable_is_lazy[self._get_variable_index(variable)]:
            return super().update_step(gradient, variable, learning_rate)
        parent_update = super().update_step

        def update():
            parent_update(gradient, variable, learning_rate)
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
        An optimizer of class `Lazy<OptimizerClass>` with `optimizer`'s
        configuration. It can be wrapped further by `layerwise_decay`.

    Examples:
    ```python
    optimizer = kerasbert.optimizers.lazy_updates(
        keras.optimizers.Adam(2e-5), lazy_variables=[r"_logits/"]
    )
    ```
    """
    return derive(optimizer, LazyUpdates, "Lazy", lazy_variables=list(lazy_variables))


def lazy_class(optimizer_class):
    """The `Lazy<ClassName>` subclass of a Keras optimizer class (registered)."""
    return derived_class(LazyUpdates, optimizer_class, "Lazy")


for _optimizer_class in BUILTIN_OPTIMIZERS:
    lazy_class(_optimizer_class)

"""Optimizer subclasses derived from any Keras 3 optimizer class and a mixin.

Keras 3 optimizers take a single learning rate and own `apply` (and, on
TensorFlow, the `tf.distribute` plumbing around it). kerasbert's optimizer
features are mixins that override only `build`, `update_step` and
`get_config`, combined with the user's optimizer class into a registered
subclass, so every optimizer keeps its own update rule.
"""

import keras

_DERIVED = {}

BUILTIN_OPTIMIZERS = (
    keras.optimizers.SGD,
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.Adamax,
    keras.optimizers.Nadam,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Adadelta,
    keras.optimizers.Adafactor,
    keras.optimizers.Lion,
    keras.optimizers.Lamb,
    keras.optimizers.Ftrl,
)


def derived_class(mixin, optimizer_class, prefix):
    """The subclass `(mixin, optimizer_class)`, created once and registered.

    It is registered for Keras serialization as
    `kerasbert>{prefix}{OptimizerClassName}`.
    """
    key = (mixin, optimizer_class)
    if key not in _DERIVED:
        name = f"{prefix}{optimizer_class.__name__}"
        subclass = type(name, (mixin, optimizer_class), {"__doc__": mixin.__doc__})
        _DERIVED[key] = keras.saving.register_keras_serializable(
            package="kerasbert", name=name
        )(subclass)
    return _DERIVED[key]


def derive(optimizer, mixin, prefix, **mixin_arguments):
    """A new optimizer of the derived class with `optimizer`'s configuration."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            f"`optimizer` must be a Keras optimizer instance. Received: {optimizer!r}"
        )
    if isinstance(optimizer, mixin):
        raise ValueError(f"`optimizer` is already a {prefix} optimizer.")
    if optimizer.built:
        raise ValueError("Wrap the optimizer before it is built (before training starts).")
    config = optimizer.get_config()
    config.update(mixin_arguments)
    # `from_config` revives a serialized learning-rate schedule.
    return derived_class(mixin, type(optimizer), prefix).from_config(config)

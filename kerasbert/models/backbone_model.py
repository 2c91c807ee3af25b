"""Config plumbing shared by every kerasbert model built on a backbone."""

import keras


class BackboneModel(keras.Model):
    """A functional model around `self.backbone` that rebuilds from its config.

    Subclasses build their graph in `__init__` and return their own
    arguments from `get_config`, merged into this class's (name, trainable
    and the serialized backbone); `from_config`
    deserializes the backbone and calls the constructor, like keras-hub's
    `Task`. Subclasses that override `compile` with the same arguments as
    `keras.Model.compile` are re-compiled on load, so a saved optimizer state
    comes back.
    """

    def get_config(self):
        # Not keras.Model's: a functional model's config lists its graph, and
        # ours rebuild the graph from their constructor arguments instead.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
        }

    def compile_from_config(self, config):
        # Keras skips re-compiling a loaded model whose `compile` is
        # overridden; ours take the same arguments, so it can be re-run.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["backbone"], dict):
            config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)

"""What every kerasbert classifier on a BERT backbone shares."""

import keras

from kerasbert.layers import layer_selection


class BackboneClassifier(keras.Model):
    """Base of the classifiers: paper defaults for `compile`, config plumbing.

    Subclasses build a functional model in `__init__`, store `self.backbone`,
    and return their arguments (with the backbone serialized) from
    `get_config`; `from_config` here deserializes the backbone and calls the
    constructor, like keras-hub's `Task`.
    """

    @staticmethod
    def check_head_arguments(num_classes, combine):
        if combine not in layer_selection.COMBINATIONS:
            raise ValueError(
                f"`combine` must be one of {layer_selection.COMBINATIONS}. "
                f"Received: combine={combine!r}"
            )
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be at least 2. Received: {num_classes}")

    @staticmethod
    def classification_head(num_classes, dropout, dtype):
        """Dropout, then the softmax layer's logits: p(c|h) = softmax(W·h)."""
        return (
            keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout"),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype=dtype,
                name="logits",
            ),
        )

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Compile with the paper's defaults unless told otherwise.

        `"auto"` means Adam at 2e-5 (Sun et al. 2019 §5.2), sparse categorical
        cross-entropy on logits, and accuracy.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(2e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips re-compiling a loaded model whose `compile` is
        # overridden; ours takes the same arguments, so it can be re-run and
        # the optimizer state of a saved model comes back.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["backbone"], dict):
            config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)

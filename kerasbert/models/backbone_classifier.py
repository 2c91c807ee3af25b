"""What every kerasbert classifier on a BERT backbone shares."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.models.backbone_model import BackboneModel


class BackboneClassifier(BackboneModel):
    """Base of the classifiers: argument checks, the softmax head, and the
    paper's defaults for `compile`."""

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
        """Dropout, then the softmax layer's logits: p(c|h) = softmax(W·h).

        The logits layer computes in float32 whatever the backbone's policy,
        so mixed-precision training keeps the head and softmax in float32.
        """
        return (
            keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout"),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype="float32",
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

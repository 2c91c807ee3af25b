"""A softmax classifier on the [CLS] state of chosen BERT layers."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.models.backbone_classifier import BackboneClassifier


@keras.saving.register_keras_serializable(package="kerasbert")
class LayerSelectedClassifier(BackboneClassifier):
    """Classify from the [CLS] hidden state of one or several encoder layers.

    Computes p(c|h) = softmax(W·h), where h is the [CLS] vector of the chosen
    layer, or the combination of several layers' [CLS] vectors (Sun et al.
    2019, Table 3). Layers are numbered 0 = embeddings output, 1 … L = the
    outputs of the L transformer layers, so the paper's "Layer-11" of BERT-base
    is our 12. All chosen layers come from one backbone pass.

    A keras-hub `TextClassifier`: with a `preprocessor` it takes raw strings
    in `fit`, `evaluate` and `predict`. The model outputs logits; `compile()`
    defaults to a from-logits loss. The backbone's `pooled_dense` layer is
    left out of the trained variables because this head never reads it (it
    would receive no gradient); the backbone itself is never changed.

    Args:
        backbone: `keras_hub.models.BertBackbone`. The encoder.
        num_classes: int or None. The number of classes; may be left out
            when `label_names` are given.
        layers: int, list of ints, or one of `"first4"`, `"last4"`, `"all"`.
            The layers whose [CLS] state is read; negative ints count from
            the end (-1 = last). Defaults to `-1`.
        combine: str. How several layers' vectors become one: `"concat"`,
            `"mean"` or `"max"`. Defaults to `"concat"`.
        dropout: float. Dropout on h before the softmax layer. Defaults to
            `0.1`.
        freeze_backbone: bool. Train only the head (feature-based use); the
            encoder's variables are left out of this model's trainable
            variables. Defaults to `False`.
        preprocessor: `kerasbert.ClassifierPreprocessor` or None. Applied to
            raw-string inputs of `fit`, `evaluate` and `predict`.
        label_names: list of str or None. The class names, in logit order;
            saved with the model, and labels may be given by name.

    Examples:
    ```python
    classifier = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["no", "yes"], layers="last4", combine="max",
        sequence_length=16,
    )
    classifier.fit(x=["a good film", "a bad film"], y=["yes", "no"], batch_size=2, verbose=0)
    classifier.predict(["who was galileo ?"], verbose=0).shape  # (1, 2)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583)
    """

    def __init__(
        self,
        backbone,
        num_classes=None,
        layers=-1,
        combine="concat",
        dropout=0.1,
        freeze_backbone=False,
        preprocessor=None,
        label_names=None,
        **kwargs,
    ):
        indices = layer_selection.resolve_layers(layers, backbone.num_layers)
        num_classes = self.resolve_num_classes(num_classes, label_names)
        self.check_head_arguments(num_classes, combine)

        self.check_one_sequence_per_text(preprocessor)

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.combiner = layer_selection.combiner(
            combine, len(indices), dtype=backbone.dtype_policy
        )
        self.output_dropout, self.output_dense = self.classification_head(
            num_classes, dropout, backbone.dtype_policy
        )

        # === Functional Model ===
        inputs = backbone.input
        cls_states = layer_selection.cls_states(backbone, indices)
        h = self.combiner(cls_states) if self.combiner else cls_states[0]
        outputs = self.output_dense(self.output_dropout(h))
        # === Config ===
        self.num_classes = num_classes
        self.label_names = list(label_names) if label_names is not None else None
        self.layer_selection = layers
        self.layer_indices = indices
        self.combine = combine
        self.dropout = dropout
        super().__init__(
            inputs=inputs, outputs=outputs, freeze_backbone=freeze_backbone, **kwargs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "layers": self.layer_selection,
            "combine": self.combine,
            "dropout": self.dropout,
        }

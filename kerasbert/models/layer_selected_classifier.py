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

    The model outputs logits; `compile()` defaults to a from-logits loss.
    The backbone's `pooled_dense` layer is set non-trainable because this
    head never reads it (it would receive no gradient).

    Args:
        backbone: `keras_hub.models.BertBackbone`. The encoder.
        num_classes: int. The number of classes.
        layers: int, list of ints, or one of `"first4"`, `"last4"`, `"all"`.
            The layers whose [CLS] state is read; negative ints count from
            the end (-1 = last). Defaults to `-1`.
        combine: str. How several layers' vectors become one: `"concat"`,
            `"mean"` or `"max"`. Defaults to `"concat"`.
        dropout: float. Dropout on h before the softmax layer. Defaults to
            `0.1`.
        freeze_backbone: bool. Freeze the encoder and train only the head
            (feature-based use). Defaults to `False`.

    Examples:
    ```python
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    model = kerasbert.LayerSelectedClassifier(
        backbone, num_classes=3, layers="last4", combine="max"
    )
    model.compile()
    logits = model.predict(preprocessor(["who was galileo ?"]), verbose=0)
    logits.shape  # (1, 3)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583)
    """

    def __init__(
        self,
        backbone,
        num_classes,
        layers=-1,
        combine="concat",
        dropout=0.1,
        freeze_backbone=False,
        **kwargs,
    ):
        indices = layer_selection.resolve_layers(layers, backbone.num_layers)
        self.check_head_arguments(num_classes, combine)

        # === Layers ===
        self.backbone = backbone
        backbone.get_layer("pooled_dense").trainable = False
        if freeze_backbone:
            backbone.trainable = False
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
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.layer_selection = layers
        self.layer_indices = indices
        self.combine = combine
        self.dropout = dropout
        self.freeze_backbone = freeze_backbone

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "layers": self.layer_selection,
            "combine": self.combine,
            "dropout": self.dropout,
            "freeze_backbone": self.freeze_backbone,
        }

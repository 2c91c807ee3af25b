"""The paper's feature-based baseline, BERT-Feat (Sun et al. 2019, Table 6)."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.layers.attention_pooler import AttentionPooler
from kerasbert.models.backbone_classifier import BackboneClassifier


@keras.saving.register_keras_serializable(package="kerasbert")
class FeatureBiLSTMClassifier(BackboneClassifier):
    """Frozen BERT features into a BiLSTM with self-attention (BERT-Feat).

    The backbone is frozen (left out of this model's trainable variables;
    the backbone object itself is not changed) and run in inference mode; the hidden states of
    the chosen layer (every token, not only [CLS]) feed a bidirectional LSTM
    that skips padding, whose outputs are pooled by a learned self-attention
    over the real tokens (Lin et al. 2017, one hop) and classified by
    softmax(W·h). This is the BERT-Feat row of the paper's Table 6.

    Args:
        backbone: `keras_hub.models.BertBackbone`. The encoder.
        num_classes: int or None. The number of classes; may be left out
            when `label_names` are given.
        layer: int. The encoder layer whose states are the features
            (0 = embeddings, -1 = last). Defaults to `-1`.
        lstm_units: int. Units of each LSTM direction. Defaults to `256`.
        attention_dim: int. Width of the self-attention scorer. Defaults to
            `128`.
        dropout: float. Dropout on the pooled vector. Defaults to `0.1`.
        freeze_backbone: bool. BERT-Feat reads frozen features; `False`
            fine-tunes the encoder through the BiLSTM (still run without
            dropout). Defaults to `True`.
        preprocessor: `kerasbert.ClassifierPreprocessor` or None. Applied to
            raw-string inputs of `fit`, `evaluate` and `predict`.
        label_names: list of str or None. The class names, in logit order.

    Examples:
    ```python
    classifier = kerasbert.FeatureBiLSTMClassifier.from_preset(
        "tiny", num_classes=2, lstm_units=8, attention_dim=8, sequence_length=16
    )
    classifier.predict(["a good film"], verbose=0).shape  # (1, 2)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), Table 6.
    - [Lin et al., 2017](https://arxiv.org/abs/1703.03130), structured self-attention.
    """

    def __init__(
        self,
        backbone,
        num_classes=None,
        layer=-1,
        lstm_units=256,
        attention_dim=128,
        dropout=0.1,
        freeze_backbone=True,
        preprocessor=None,
        label_names=None,
        **kwargs,
    ):
        num_classes = self.resolve_num_classes(num_classes, label_names)
        self.check_head_arguments(num_classes, "concat")
        (index,) = layer_selection.resolve_layers(layer, backbone.num_layers)
        self.check_one_sequence_per_text(preprocessor)

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        dtype = backbone.dtype_policy
        self.bilstm = keras.layers.Bidirectional(
            keras.layers.LSTM(lstm_units, return_sequences=True, dtype=dtype),
            dtype=dtype,
            name="bilstm",
        )
        self.pooler = AttentionPooler(attention_dim, dtype=dtype, name="attention_pooler")
        self.output_dropout, self.output_dense = self.classification_head(
            num_classes, dropout, dtype
        )

        # === Functional Model ===
        inputs = backbone.input
        # The frozen encoder always runs in inference mode (no dropout).
        states = keras.Model(
            backbone.input, backbone.get_layer(layer_selection.layer_name(index)).output,
            name="feature_encoder",
        )(inputs, training=False)
        mask = keras.ops.not_equal(inputs["padding_mask"], 0)
        sequence = self.bilstm(states, mask=mask)
        pooled = self.pooler(sequence, mask=inputs["padding_mask"])
        outputs = self.output_dense(self.output_dropout(pooled))
        # === Config ===
        self.num_classes = num_classes
        self.label_names = list(label_names) if label_names is not None else None
        self.layer = layer
        self.layer_index = index
        self.lstm_units = lstm_units
        self.attention_dim = attention_dim
        self.dropout = dropout
        super().__init__(
            inputs=inputs, outputs=outputs, freeze_backbone=freeze_backbone, **kwargs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "layer": self.layer,
            "lstm_units": self.lstm_units,
            "attention_dim": self.attention_dim,
            "dropout": self.dropout,
        }

"""The paper's feature-based baseline, BERT-Feat (Sun et al. 2019, Table 6)."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.layers.attention_pooler import AttentionPooler
from kerasbert.models.backbone_classifier import BackboneClassifier


@keras.saving.register_keras_serializable(package="kerasbert")
class FeatureBiLSTMClassifier(BackboneClassifier):
    """Frozen BERT features into a BiLSTM with self-attention (BERT-Feat).

    The backbone is frozen and run in inference mode; the hidden states of
    the chosen layer (every token, not only [CLS]) feed a bidirectional LSTM
    that skips padding, whose outputs are pooled by a learned self-attention
    over the real tokens (Lin et al. 2017, one hop) and classified by
    softmax(W·h). This is the BERT-Feat row of the paper's Table 6.

    Args:
        backbone: `keras_hub.models.BertBackbone`. Frozen by this model.
        num_classes: int. The number of classes.
        layer: int. The encoder layer whose states are the features
            (0 = embeddings, -1 = last). Defaults to `-1`.
        lstm_units: int. Units of each LSTM direction. Defaults to `256`.
        attention_dim: int. Width of the self-attention scorer. Defaults to
            `128`.
        dropout: float. Dropout on the pooled vector. Defaults to `0.1`.

    Examples:
    ```python
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    model = kerasbert.FeatureBiLSTMClassifier(backbone, 2, lstm_units=8, attention_dim=8)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(["a good film"])
    model.predict(features, verbose=0).shape  # (1, 2)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), Table 6.
    - [Lin et al., 2017](https://arxiv.org/abs/1703.03130), structured self-attention.
    """

    def __init__(
        self,
        backbone,
        num_classes,
        layer=-1,
        lstm_units=256,
        attention_dim=128,
        dropout=0.1,
        **kwargs,
    ):
        self.check_head_arguments(num_classes, "concat")
        (index,) = layer_selection.resolve_layers(layer, backbone.num_layers)

        # === Layers ===
        self.backbone = backbone
        backbone.trainable = False
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
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.layer = layer
        self.layer_index = index
        self.lstm_units = lstm_units
        self.attention_dim = attention_dim
        self.dropout = dropout

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "layer": self.layer,
            "lstm_units": self.lstm_units,
            "attention_dim": self.attention_dim,
            "dropout": self.dropout,
        }

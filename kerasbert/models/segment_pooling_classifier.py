"""The paper's hierarchical classifier for documents longer than BERT reads."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.models.backbone_classifier import BackboneClassifier
from kerasbert.layers.attention_pooler import AttentionPooler
from kerasbert.layers.max_pooler import MaxPooler
from kerasbert.layers.mean_pooler import MeanPooler
from kerasbert.layers.segment_encoder import SegmentEncoder

POOLERS = {"mean": MeanPooler, "max": MaxPooler, "attention": AttentionPooler}


@keras.saving.register_keras_serializable(package="kerasbert")
class SegmentPoolingClassifier(BackboneClassifier):
    """Classify long documents from the pooled [CLS] vectors of their segments.

    Sun et al. (2019, §5.3.1): a document of L word pieces is split into
    k = ⌈L/510⌉ segments (`ClassifierPreprocessor(truncation="segments")`),
    each segment is encoded by BERT, the [CLS] vectors of the segments are
    pooled by `"mean"`, `"max"` or `"attention"` (a learned softmax over the
    real segments), and p(c|h) = softmax(W·h). All real segments of a batch
    are encoded in one backbone call; padding segments are skipped, so they
    cost nothing and change no output. A one-segment document gets exactly
    the output of a `LayerSelectedClassifier` with the same weights.

    Args:
        backbone: `keras_hub.models.BertBackbone`. The encoder.
        num_classes: int or None. The number of classes; may be left out
            when `label_names` are given.
        pooling: str. `"mean"`, `"max"` or `"attention"`. Defaults to
            `"mean"`.
        layers: int, list of ints, or `"first4"`, `"last4"`, `"all"`. The
            layers whose [CLS] vectors represent a segment (see
            `LayerSelectedClassifier`). Defaults to `-1`, the last layer.
        combine: str. How several layers combine: `"concat"`, `"mean"`,
            `"max"`. Defaults to `"concat"`.
        dropout: float. Dropout before the softmax layer. Defaults to `0.1`.
        freeze_backbone: bool. Train only the pooler and head. Defaults to
            `False`.
        preprocessor: `kerasbert.ClassifierPreprocessor` with
            `truncation="segments"`, or None. Applied to raw-string inputs
            of `fit`, `evaluate` and `predict`.
        label_names: list of str or None. The class names, in logit order.

    Examples:
    ```python
    classifier = kerasbert.SegmentPoolingClassifier.from_preset(
        "tiny", num_classes=2, pooling="attention", sequence_length=8
    )
    classifier.predict(["a b c d e f g h i j k l m n", "a short one"], verbose=0).shape
    # (2, 2)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), Table 2.
    """

    def __init__(
        self,
        backbone,
        num_classes=None,
        pooling="mean",
        layers=-1,
        combine="concat",
        dropout=0.1,
        freeze_backbone=False,
        preprocessor=None,
        label_names=None,
        **kwargs,
    ):
        if pooling not in POOLERS:
            raise ValueError(f"`pooling` must be one of {tuple(POOLERS)}. Received: {pooling!r}")
        num_classes = self.resolve_num_classes(num_classes, label_names)
        self.check_head_arguments(num_classes, combine)
        indices = layer_selection.resolve_layers(layers, backbone.num_layers)
        if preprocessor is not None and not preprocessor.segmented:
            raise ValueError(
                "`SegmentPoolingClassifier` reads (batch, segments, length) inputs; its "
                'preprocessor needs truncation="segments". Received: '
                f"truncation={preprocessor.truncation!r}"
            )

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        dtype = backbone.dtype_policy
        states = layer_selection.cls_states(backbone, indices)
        merge = layer_selection.combiner(combine, len(indices), dtype=dtype)
        segment_vector = merge(states) if merge else states[0]
        self.segment_encoder = SegmentEncoder(
            keras.Model(backbone.input, segment_vector, name="cls_encoder"),
            dtype=dtype,
            name="segment_encoder",
        )
        self.pooler = POOLERS[pooling](dtype=dtype, name=f"{pooling}_pooler")
        self.output_dropout, self.output_dense = self.classification_head(
            num_classes, dropout, backbone.dtype_policy
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape=(None, None), dtype="int32", name=name)
            for name in ("token_ids", "segment_ids", "padding_mask")
        }
        vectors, segment_mask = self.segment_encoder(inputs)
        pooled = self.pooler(vectors, mask=segment_mask)
        outputs = self.output_dense(self.output_dropout(pooled))
        # === Config ===
        self.num_classes = num_classes
        self.label_names = list(label_names) if label_names is not None else None
        self.pooling = pooling
        self.layer_selection = layers
        self.layer_indices = indices
        self.combine = combine
        self.dropout = dropout
        super().__init__(
            inputs=inputs, outputs=outputs, freeze_backbone=freeze_backbone, **kwargs
        )

    @classmethod
    def make_preprocessor(cls, tokenizer, **kwargs):
        kwargs.setdefault("truncation", "segments")
        return super().make_preprocessor(tokenizer, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "layers": self.layer_selection,
            "combine": self.combine,
            "dropout": self.dropout,
        }

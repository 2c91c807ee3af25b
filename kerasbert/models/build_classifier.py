"""One builder from flag-style settings to a classifier with its preprocessor."""

from kerasbert.backbones import load_backbone
from kerasbert.layers import layer_selection
from kerasbert.models.feature_bilstm_classifier import FeatureBiLSTMClassifier
from kerasbert.models.layer_selected_classifier import LayerSelectedClassifier
from kerasbert.models.segment_pooling_classifier import SegmentPoolingClassifier
from kerasbert.text import packing
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor

CLASSIFIERS = ("cls", "feature_bilstm")


def build_classifier(
    backbone,
    label_names,
    *,
    classifier="cls",
    sequence_length=packing.DEFAULT_SEQUENCE_LENGTH,
    truncation=packing.DEFAULT_TRUNCATION,
    head_length=packing.DEFAULT_HEAD_LENGTH,
    max_segments=None,
    segment_stride=0,
    segment_pooling="mean",
    layers=-1,
    combine="concat",
    dropout=0.1,
    freeze_backbone=False,
    mixed_precision=None,
):
    """The classifier the paper's settings name, with its preprocessor attached.

    `truncation="segments"` gives a `SegmentPoolingClassifier` (hierarchical
    method); `classifier="feature_bilstm"` a `FeatureBiLSTMClassifier` on the
    frozen states of the one layer `layers` names (BERT-Feat); otherwise a
    `LayerSelectedClassifier`. The preprocessor pads each batch to its
    longest member.

    Args:
        backbone: str. A spec for `kerasbert.load_backbone`.
        label_names: list of str. The classes, in logit order.
        classifier: str. `"cls"` or `"feature_bilstm"`.
        sequence_length, truncation, head_length, max_segments: see
            `kerasbert.ClassifierPreprocessor`.
        segment_stride: the preprocessor's `stride` under segments.
        segment_pooling: str. `"mean"`, `"max"` or `"attention"`.
        layers, combine, dropout, freeze_backbone: see
            `kerasbert.LayerSelectedClassifier`.
        mixed_precision: str or None. The backbone's dtype policy.

    Returns:
        A `kerasbert` classifier with `preprocessor` and `label_names` set.

    Examples:
    ```python
    classifier = kerasbert.build_classifier(
        "tiny", ["no", "yes"], sequence_length=32, truncation="head_tail", head_length=8
    )
    type(classifier).__name__  # 'LayerSelectedClassifier'
    ```
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"`classifier` must be one of {CLASSIFIERS}. Received: {classifier!r}")
    backbone_model, tokenizer = load_backbone(backbone, dtype=mixed_precision)
    preprocessor = ClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length, truncation=truncation,
        head_length=head_length, max_segments=max_segments, stride=segment_stride,
        padding="longest",
    )
    common = dict(preprocessor=preprocessor, label_names=list(label_names), dropout=dropout,
                  freeze_backbone=freeze_backbone)
    if classifier == "feature_bilstm":
        indexes = layer_selection.resolve_layers(layers, backbone_model.num_layers)
        if len(indexes) != 1:
            raise ValueError(
                '`classifier="feature_bilstm"` reads the states of one layer. '
                f"Received: layers={layers!r}"
            )
        # BERT-Feat: the features are always frozen.
        return FeatureBiLSTMClassifier(backbone_model, layer=indexes[0],
                                       **{**common, "freeze_backbone": True})
    if preprocessor.segmented:
        return SegmentPoolingClassifier(
            backbone_model, pooling=segment_pooling, layers=layers, combine=combine, **common
        )
    return LayerSelectedClassifier(backbone_model, layers=layers, combine=combine, **common)

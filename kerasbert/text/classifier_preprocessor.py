"""Raw strings to BERT inputs, with the paper's long-text truncations."""

import weakref

import keras
import keras_hub
import tensorflow as tf

from kerasbert.text import packing

PADDING_MODES = ("max_length", "longest")
TRUNCATIONS = packing.TRUNCATION_STRATEGIES + ("segments",)


@keras.saving.register_keras_serializable(package="kerasbert")
class ClassifierPreprocessor(keras_hub.models.Preprocessor):
    """Tokenize, truncate and pack a batch of raw strings for a BERT classifier.

    Each string becomes `[CLS] word pieces [SEP]`. Texts whose word pieces fit
    into `sequence_length - 2` are never cut; longer ones are truncated by
    `truncation` (Sun et al. 2019, Table 2):
    - `"head"`: the first `sequence_length - 2` word pieces;
    - `"tail"`: the last `sequence_length - 2`;
    - `"head_tail"`: the first `head_length` and the last
      `sequence_length - 2 - head_length` (the paper's best: 128 + 382).

    `truncation="segments"` cuts nothing: it splits each text into
    k = ⌈n / (sequence_length − 2)⌉ segments, each a full `[CLS] … [SEP]`
    input, for the paper's hierarchical method (`SegmentPoolingClassifier`).
    The outputs then have shape `(batch, segments, length)`, where `segments`
    is the batch's largest k; a segment is real when its padding mask has a
    non-zero entry, and the missing segments of shorter texts are all padding.
    `stride` makes consecutive segments share word pieces; `max_segments`
    caps k, keeping the first ⌈m/2⌉ and last ⌊m/2⌋ segments of a longer text
    (see `packing.split_into_segments`). Memory then stays bounded by
    batch × max_segments segments.

    Everything runs in-graph on `tf.string` tensors, so the layer can be mapped
    over a `tf.data.Dataset` and saved inside a SavedModel. An empty string is
    valid input and gives `[CLS] [SEP]`.

    Args:
        tokenizer: `keras_hub.models.BertTokenizer`. The word-piece tokenizer.
        sequence_length: int. The model's input length, [CLS] and [SEP]
            included. Defaults to `512`.
        truncation: str. `"head"`, `"tail"`, `"head_tail"` or `"segments"`.
            Defaults to `"head"`.
        head_length: int. Word pieces kept from the start under
            `"head_tail"`. Defaults to `128`.
        max_segments: int or None. Under `"segments"`, the most segments
            kept per text. Defaults to `None` (all).
        stride: int. Under `"segments"`, word pieces shared by consecutive
            segments. Defaults to `0`.
        padding: str. `"max_length"` pads every batch to `sequence_length`;
            `"longest"` pads a batch to its longest member (dynamic padding).
            The model's outputs are the same either way. Defaults to
            `"max_length"`.

    Call arguments:
        x: a string, a list of strings, or a `tf.string` tensor of shape
            `(batch,)`.
        y: optional labels, passed through.
        sample_weight: optional sample weights, passed through.

    Returns:
        A dict with `"token_ids"`, `"segment_ids"` and `"padding_mask"` (1 for
        real tokens, 0 for padding), int32 tensors of shape `(batch, length)`; with `y`, a tuple
        `(features, y)` or `(features, y, sample_weight)`.

    Examples:
    ```python
    _, tokenizer = kerasbert.load_backbone("tiny")
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=8, truncation="head_tail", head_length=2
    )
    preprocessor(["what is the name of the city ?"])["token_ids"].shape
    # (1, 8)
    ```
    """

    # keras-hub's `from_preset` matches preprocessors to backbones by these.
    backbone_cls = keras_hub.models.BertBackbone
    tokenizer_cls = keras_hub.models.BertTokenizer

    def __init__(
        self,
        tokenizer,
        sequence_length=packing.DEFAULT_SEQUENCE_LENGTH,
        truncation=packing.DEFAULT_TRUNCATION,
        head_length=packing.DEFAULT_HEAD_LENGTH,
        padding="max_length",
        max_segments=None,
        stride=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if truncation not in TRUNCATIONS:
            raise ValueError(
                f"`truncation` must be one of {TRUNCATIONS}. Received: truncation={truncation!r}"
            )
        if sequence_length < 3:
            raise ValueError(
                "`sequence_length` must leave room for [CLS], [SEP] and at least "
                f"one word piece. Received: sequence_length={sequence_length}"
            )
        if truncation == "head_tail" and not 0 <= head_length <= sequence_length - 2:
            raise ValueError(
                f"`head_length` must be between 0 and sequence_length - 2 = "
                f"{sequence_length - 2}. Received: head_length={head_length}"
            )
        if not 0 <= stride < sequence_length - 2:
            raise ValueError(
                f"`stride` must be in [0, sequence_length - 2 = {sequence_length - 2}). "
                f"Received: stride={stride}"
            )
        if max_segments is not None and max_segments < 1:
            raise ValueError(f"`max_segments` must be at least 1. Received: {max_segments}")
        if padding not in PADDING_MODES:
            raise ValueError(
                f"`padding` must be one of {PADDING_MODES}. Received: padding={padding!r}"
            )
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.truncation = truncation
        self.head_length = head_length
        self.padding = padding
        self.max_segments = max_segments
        self.stride = stride

    @property
    def segmented(self):
        """Whether outputs have a segment axis: `(batch, segments, length)`."""
        return self.truncation == "segments"

    def _pack(self, texts):
        """Strings of shape `(batch,)` to the three model inputs."""
        token_ids = self.tokenizer(texts)
        if self.segmented:
            token_ids, segments_per_text = packing.split_into_segments(
                token_ids, self.sequence_length - 2, self.stride, self.max_segments
            )
        else:
            token_ids = packing.truncate(
                token_ids, self.sequence_length - 2, self.truncation, self.head_length
            )
        token_ids = packing.add_special_tokens(
            token_ids, self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        )
        length = self.sequence_length if self.padding == "max_length" else None
        token_ids, padding_mask = packing.pad(
            token_ids, self.tokenizer.pad_token_id, length
        )
        if self.segmented:
            # (segments, length) → (texts, segments, length); absent segments
            # are all padding.
            token_ids = tf.RaggedTensor.from_row_lengths(
                token_ids, segments_per_text
            ).to_tensor(default_value=self.tokenizer.pad_token_id)
            padding_mask = tf.RaggedTensor.from_row_lengths(
                padding_mask, segments_per_text
            ).to_tensor(default_value=False)
        return {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            # int32, the dtype `BertBackbone` declares; a bool input also
            # breaks Keras training under `tf.distribute.MirroredStrategy`.
            "padding_mask": tf.cast(padding_mask, tf.int32),
        }

    def call(self, x, y=None, sample_weight=None):
        texts = tf.convert_to_tensor(x, dtype=tf.string)
        if texts.shape.rank == 0:
            texts = texts[tf.newaxis]
        if texts.shape.rank != 1:
            raise ValueError(
                "`ClassifierPreprocessor` takes a batch of strings of shape "
                f"(batch,). Received shape: {texts.shape}"
            )
        if tf.inside_function():
            features = self._pack(texts)
        else:
            # keras-hub tokenizers switch to a pure-Python path when called
            # eagerly; a tf.function keeps the whole pipeline in TensorFlow.
            features = _eager_pack_function(self)(texts)
        return keras.utils.pack_x_y_sample_weight(features, y, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "truncation": self.truncation,
                "head_length": self.head_length,
                "padding": self.padding,
                "max_segments": self.max_segments,
                "stride": self.stride,
            }
        )
        return config


# One tf.function per preprocessor for eager calls. It lives here rather than
# on the layer: SavedModel export walks a layer's attributes and would try to
# serialise it.
_EAGER_PACK_FUNCTIONS = weakref.WeakKeyDictionary()


def _eager_pack_function(preprocessor):
    function = _EAGER_PACK_FUNCTIONS.get(preprocessor)
    if function is None:
        layer = weakref.ref(preprocessor)
        function = tf.function(
            lambda texts: layer()._pack(texts),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        _EAGER_PACK_FUNCTIONS[preprocessor] = function
    return function

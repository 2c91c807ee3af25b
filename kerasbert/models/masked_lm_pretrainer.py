"""Masked-LM (and next-sentence) further pre-training of a BERT backbone."""

import keras
import keras_hub

from kerasbert.models.backbone_task import BackboneTask


@keras.saving.register_keras_serializable(package="kerasbert")
class MaskedLMPretrainer(BackboneTask, keras_hub.models.Task):
    """BERT's pre-training objectives on a keras-hub `BertBackbone`.

    Outputs `{"mlm": logits}` of shape `(batch, mask_positions, vocabulary)`
    for the masked positions, and with `nsp=True` also `{"nsp": logits}` of
    shape `(batch, 2)` (0 = B follows A, 1 = B is random) read from the
    backbone's pooled output, as in BERT and the paper's further
    pre-training (MLM + NSP).

    The MLM head is keras-hub's `MaskedLMHead` with its output projection
    tied to the token embeddings. Checkpoints loaded as a bare encoder, such
    as all-MiniLM-L6-v2 (a sentence-embedding model that ships no LM head),
    start with a freshly initialised head transform and output bias; only
    the embeddings it is tied to are pretrained.

    Inputs are those of `keras_hub.models.BertMaskedLMPreprocessor`:
    `token_ids`, `segment_ids`, `padding_mask` and `mask_positions`. With
    that preprocessor attached, `fit` and `evaluate` take raw strings and
    mask them (MLM only).

    Args:
        backbone: `keras_hub.models.BertBackbone`.
        nsp: bool. Add the next-sentence-prediction head. Defaults to
            `False`.
        preprocessor: `keras_hub.models.BertMaskedLMPreprocessor` or None.
        freeze_backbone: bool. Train only the heads. Defaults to `False`.

    Examples:
    ```python
    pretrainer = kerasbert.MaskedLMPretrainer.from_preset(
        "tiny", sequence_length=16, mask_selection_length=4
    )
    pretrainer.fit(["the film was good", "who was galileo ?"], batch_size=2, verbose=0)
    x, y, sample_weight = pretrainer.preprocessor(["the film was good"])
    pretrainer.predict(x, verbose=0)["mlm"].shape  # (1, 4, vocabulary size)
    ```
    """

    preprocessor_cls = keras_hub.models.BertMaskedLMPreprocessor
    PREPROCESSOR_ARGUMENTS = (
        "sequence_length", "mask_selection_rate", "mask_selection_length",
    )

    def __init__(self, backbone, nsp=False, preprocessor=None, freeze_backbone=False, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.masked_lm_head = keras_hub.layers.MaskedLMHead(
            vocabulary_size=backbone.vocabulary_size,
            token_embedding=backbone.token_embedding,
            intermediate_activation="gelu",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        self.nsp_head = None
        if nsp:
            self.nsp_head = keras.layers.Dense(
                2,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype=backbone.dtype_policy,
                name="nsp_logits",
            )

        # === Functional Model ===
        inputs = {
            **backbone.input,
            "mask_positions": keras.Input(shape=(None,), dtype="int32", name="mask_positions"),
        }
        encoded = backbone(backbone.input)
        outputs = {
            "mlm": self.masked_lm_head(encoded["sequence_output"], inputs["mask_positions"])
        }
        if nsp:
            outputs["nsp"] = self.nsp_head(encoded["pooled_output"])
        # === Config ===
        self.nsp = nsp
        super().__init__(
            inputs=inputs, outputs=outputs, freeze_backbone=freeze_backbone, **kwargs
        )

    def unused_backbone_layers(self):
        # The NSP head reads the pooled output; MLM alone does not.
        return () if self.nsp else ("pooled_dense",)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            super().preprocess_samples(x, y, sample_weight)
        )
        if y is not None and not isinstance(y, dict):
            # The masked LM preprocessor labels the masked pieces; this
            # model's outputs are a dict.
            y = {"mlm": y}
            sample_weight = None if sample_weight is None else {"mlm": sample_weight}
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto", **kwargs):
        """Compile with BERT's losses unless told otherwise.

        `"auto"`: AdamW at 5e-5 (the paper's further pre-training rate),
        sparse cross-entropy on logits for each head, and MLM accuracy over
        the real masked positions (weighted by `mask_weights`).
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(5e-5, weight_decay=0.01)
        if loss == "auto":
            heads = ("mlm", "nsp") if self.nsp else ("mlm",)
            loss = {name: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                    for name in heads}
        if weighted_metrics == "auto":
            weighted_metrics = {"mlm": [keras.metrics.SparseCategoricalAccuracy("accuracy")]}
            if self.nsp:
                weighted_metrics["nsp"] = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
        keras.Model.compile(
            self, optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "nsp": self.nsp,
        }

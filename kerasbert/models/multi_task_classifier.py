"""One shared BERT encoder, one softmax head per task (Sun et al. 2019, §4.4)."""

import keras

from kerasbert.layers import layer_selection
from kerasbert.models.backbone_classifier import BackboneClassifier
from kerasbert.optimizers.lazy_updates import LazyUpdates
from kerasbert.optimizers.lazy_updates import lazy_updates

HEAD_SUFFIX = "_logits"


@keras.saving.register_keras_serializable(package="kerasbert")
class MultiTaskClassifier(BackboneClassifier):
    """Multi-task fine-tuning: a shared encoder with a softmax head per task.

    All BERT layers and embeddings are shared; every task has its own
    dropout + softmax layer on the [CLS] state of the chosen layers. The
    model outputs a dict `{task: logits}`. Batches are homogeneous: the
    labels of a batch of task t are given under key t and every other key
    gets sample weight 0 (see `kerasbert.data.task_sampling`), so only t's
    head contributes loss, and Keras reports `{task}_accuracy` per task.

    `compile()` wraps its optimizer with `kerasbert.optimizers.lazy_updates`
    on the heads, so a batch of task A leaves task B's head (and its
    optimizer state) untouched, as PyTorch's Adam did for the paper.

    Args:
        backbone: `keras_hub.models.BertBackbone`. The shared encoder.
        tasks: dict. Task name → number of classes. Names must be valid
            Keras layer names (letters, digits, `_`).
        layers: see `LayerSelectedClassifier`. Defaults to `-1`.
        combine: see `LayerSelectedClassifier`. Defaults to `"concat"`.
        dropout: float. Dropout before each softmax layer. Defaults to `0.1`.
        freeze_backbone: bool. Train only the heads. Defaults to `False`.
        preprocessor: `kerasbert.ClassifierPreprocessor` or None. Applied to
            raw-string inputs of `predict` (training batches carry a task
            each; see `kerasbert.data.task_sampling`).

    Examples:
    ```python
    model = kerasbert.MultiTaskClassifier.from_preset(
        "tiny", tasks={"topic": 4, "sentiment": 2}, sequence_length=16
    )
    {name: logits.shape for name, logits in model.predict(["a good film"], verbose=0).items()}
    # {'topic': (1, 4), 'sentiment': (1, 2)}
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), Table 7.
    """

    def __init__(
        self,
        backbone,
        tasks,
        layers=-1,
        combine="concat",
        dropout=0.1,
        freeze_backbone=False,
        preprocessor=None,
        **kwargs,
    ):
        if not tasks:
            raise ValueError("`tasks` must name at least one task.")
        for name, num_classes in tasks.items():
            if not name.replace("_", "").isalnum():
                raise ValueError(
                    f"Task names must be letters, digits and '_'. Received: {name!r}"
                )
            self.check_head_arguments(num_classes, combine)
        indices = layer_selection.resolve_layers(layers, backbone.num_layers)

        self.check_one_sequence_per_text(preprocessor)

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        dtype = backbone.dtype_policy
        self.combiner = layer_selection.combiner(combine, len(indices), dtype=dtype)
        self.heads = {}
        for name, num_classes in tasks.items():
            dropout_layer, dense = self.classification_head(num_classes, dropout, dtype)
            dropout_layer.name = f"{name}_dropout"
            dense.name = f"{name}{HEAD_SUFFIX}"
            self.heads[name] = (dropout_layer, dense)

        # === Functional Model ===
        inputs = backbone.input
        cls_states = layer_selection.cls_states(backbone, indices)
        h = self.combiner(cls_states) if self.combiner else cls_states[0]
        outputs = {name: dense(drop(h)) for name, (drop, dense) in self.heads.items()}
        # === Config ===
        self.tasks = dict(tasks)
        self.label_names = None
        self.layer_selection = layers
        self.layer_indices = indices
        self.combine = combine
        self.dropout = dropout
        super().__init__(
            inputs=inputs, outputs=outputs, freeze_backbone=freeze_backbone, **kwargs
        )

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto", **kwargs):
        """Compile with per-task losses and accuracies; heads update lazily.

        `"auto"`: Adam at 2e-5, sparse cross-entropy on logits per task and
        accuracy per task weighted by the batch's task. Any optimizer is
        wrapped with `lazy_updates` on the heads unless it already is (inside
        a `LossScaleOptimizer`, its inner optimizer is wrapped).
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(2e-5)
        optimizer = _lazy_heads(optimizer)
        if loss == "auto":
            loss = {name: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                    for name in self.tasks}
        if weighted_metrics == "auto":
            weighted_metrics = {
                name: [keras.metrics.SparseCategoricalAccuracy("accuracy")] for name in self.tasks
            }
        keras.Model.compile(
            self, optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs
        )

    def task_model(self, task):
        """A Keras model from the shared inputs to one task's logits.

        It shares weights with this model; pass it to
        `kerasbert.export_serving` to export the task as its own SavedModel.
        """
        if task not in self.tasks:
            raise ValueError(f"Unknown task {task!r}; tasks are {sorted(self.tasks)}.")
        return keras.Model(self.input, self.output[task], name=f"{task}_classifier")

    def get_config(self):
        config = super().get_config()
        del config["label_names"]
        return {
            **config,
            "tasks": self.tasks,
            "layers": self.layer_selection,
            "combine": self.combine,
            "dropout": self.dropout,
        }


def _lazy_heads(optimizer):
    if isinstance(optimizer, LazyUpdates):
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # Loss scaling stays outermost: it unscales the gradients and skips
        # non-finite steps before the lazy optimizer sees them.
        return keras.optimizers.LossScaleOptimizer(
            _lazy_heads(optimizer.inner_optimizer),
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps,
        )
    return lazy_updates(optimizer, [rf"(^|/)[^/]+{HEAD_SUFFIX}/"])

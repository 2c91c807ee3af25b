"""The paper's fine-tuning optimizer: Adam(W), warmup + decay, layer-wise rates."""

from absl import logging

from kerasbert.optimizers.fused_adam import FusedAdam
from kerasbert.optimizers.layerwise import LAYER_NORM_AND_BIAS
from kerasbert.optimizers.layerwise import format_multiplier_table
from kerasbert.optimizers.layerwise import layerwise_decay
from kerasbert.optimizers.layerwise import layerwise_multipliers
from kerasbert.optimizers.schedules import SlantedTriangular
from kerasbert.optimizers.schedules import WarmupLinearDecay

SCHEDULES = ("warmup_linear", "slanted_triangular")
# The word-embedding table of a keras-hub BERT.
TOKEN_EMBEDDING = r"(^|/)token_embedding/"


def build_optimizer(
    model, learning_rate, total_steps, warmup_proportion=0.1, schedule="warmup_linear",
    layer_decay=1.0, layer_decay_convention="paper", weight_decay=0.0,
    sparse_embedding_updates=False,
):
    """Adam(W) with the paper's schedule and optional layer-wise decay.

    Args:
        model: the model to train; its variable paths give the layer depths.
        learning_rate: float. The peak rate (of the top layer).
        total_steps: int. Steps of the whole run, for the schedule.
        warmup_proportion: float. Warmup share (the cut fraction of
            `"slanted_triangular"`).
        schedule: str. `"warmup_linear"` or `"slanted_triangular"`.
        layer_decay: float. ξ; 1.0 trains every layer at the same rate.
        layer_decay_convention: str. `"paper"` or `"official_code"`.
        weight_decay: float. AdamW's decoupled weight decay when > 0.
        sparse_embedding_updates: bool. Update only the word-embedding rows a
            batch looks up (LazyAdam; see `FusedAdam`). Departs from the
            paper's Adam; off by default.

    Adam with β1 0.9, β2 0.999 and BERT's ε 1e-6, as `FusedAdam` (Keras'
    Adam formula in one fused kernel per variable); decoupled weight decay
    (AdamW) when `weight_decay` > 0, LayerNorm and bias variables excluded.
    With `layer_decay` < 1 the optimizer is wrapped by `layerwise_decay` and
    the effective rate per layer group is logged.

    Examples:
    ```python
    model = kerasbert.LayerSelectedClassifier.from_preset("tiny", num_classes=2)
    optimizer = kerasbert.optimizers.build_optimizer(
        model, 2e-5, total_steps=100, layer_decay=0.95
    )
    isinstance(optimizer, kerasbert.optimizers.LayerwiseDecay)  # True
    ```
    """
    if schedule == "warmup_linear":
        rate = WarmupLinearDecay(learning_rate, total_steps, warmup_proportion)
    elif schedule == "slanted_triangular":
        rate = SlantedTriangular(learning_rate, total_steps, cut_fraction=warmup_proportion)
    else:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: {schedule!r}")
    optimizer = FusedAdam(
        rate, epsilon=1e-6, weight_decay=weight_decay if weight_decay > 0 else None,
        sparse_variables=[TOKEN_EMBEDDING] if sparse_embedding_updates else None,
    )
    if layer_decay == 1.0:
        if weight_decay > 0:
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
    optimizer = layerwise_decay(
        optimizer, decay=layer_decay, convention=layer_decay_convention,
        weight_decay_exclusions=LAYER_NORM_AND_BIAS if weight_decay > 0 else None,
    )
    table = layerwise_multipliers(model, layer_decay, layer_decay_convention)
    logging.info(
        "Layer-wise learning rates (ξ=%s, %s convention, peak lr %s):\n%s",
        layer_decay, layer_decay_convention, learning_rate,
        format_multiplier_table(table, learning_rate),
    )
    return optimizer

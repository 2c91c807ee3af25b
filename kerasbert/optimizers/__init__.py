from kerasbert.optimizers import schedules  # noqa: F401
from kerasbert.optimizers.derived import BUILTIN_OPTIMIZERS
from kerasbert.optimizers.fused_adam import FusedAdam
from kerasbert.optimizers.lazy_updates import LazyUpdates  # noqa: F401
from kerasbert.optimizers.lazy_updates import lazy_class
from kerasbert.optimizers.lazy_updates import lazy_updates  # noqa: F401
from kerasbert.optimizers.layerwise import LAYER_NORM_AND_BIAS  # noqa: F401
from kerasbert.optimizers.layerwise import LayerwiseDecay  # noqa: F401
from kerasbert.optimizers.layerwise import format_multiplier_table  # noqa: F401
from kerasbert.optimizers.layerwise import layerwise_class
from kerasbert.optimizers.layerwise import layerwise_decay  # noqa: F401
from kerasbert.optimizers.layerwise import layerwise_multipliers  # noqa: F401

# Register the combined classes too (`layerwise_decay(lazy_updates(Adam))`),
# so saved models that use them load in a fresh process.
for _optimizer_class in BUILTIN_OPTIMIZERS + (FusedAdam,):
    layerwise_class(_optimizer_class)
    layerwise_class(lazy_class(_optimizer_class))
lazy_class(layerwise_class(FusedAdam))  # a MultiTaskClassifier's heads over layer-wise rates
from kerasbert.optimizers.paper_optimizer import build_optimizer  # noqa: F401

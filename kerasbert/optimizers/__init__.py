from kerasbert.optimizers import schedules  # noqa: F401
from kerasbert.optimizers.layerwise import LAYER_NORM_AND_BIAS  # noqa: F401
from kerasbert.optimizers.layerwise import LayerwiseDecay  # noqa: F401
from kerasbert.optimizers.layerwise import format_multiplier_table  # noqa: F401
from kerasbert.optimizers.layerwise import layerwise_class  # noqa: F401
from kerasbert.optimizers.layerwise import layerwise_multipliers  # noqa: F401

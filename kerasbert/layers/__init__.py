from kerasbert.layers.attention_pooler import AttentionPooler  # noqa: F401
from kerasbert.layers.max_pooler import MaxPooler  # noqa: F401
from kerasbert.layers.mean_pooler import MeanPooler  # noqa: F401

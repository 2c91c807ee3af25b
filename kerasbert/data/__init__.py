"""Reading labeled texts and corpora, and batching them."""

from kerasbert.data import batching  # noqa: F401
from kerasbert.data import corpus  # noqa: F401
from kerasbert.data import datasets  # noqa: F401
from kerasbert.data import generator_dataset  # noqa: F401
from kerasbert.data import registry  # noqa: F401
from kerasbert.data import task_sampling  # noqa: F401

"""kerasbert: fine-tune BERT for text classification, after Sun et al. (2019)."""

import os as _os

# keras-hub preprocessing runs in TensorFlow; pin the Keras backend to match
# before Keras is first imported.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from kerasbert import optimizers  # noqa: E402
from kerasbert.backbones import load_backbone  # noqa: E402
from kerasbert.data.batching import make_batches  # noqa: E402
from kerasbert.data.datasets import LabeledTexts  # noqa: E402
from kerasbert.data.datasets import load_dataset  # noqa: E402
from kerasbert.data.datasets import read_labeled_texts  # noqa: E402
from kerasbert.export import export_serving  # noqa: E402
from kerasbert import layers  # noqa: E402
from kerasbert.models.layer_selected_classifier import LayerSelectedClassifier  # noqa: E402
from kerasbert.models.segment_pooling_classifier import SegmentPoolingClassifier  # noqa: E402
from kerasbert.optimizers import schedules  # noqa: E402
from kerasbert.optimizers.layerwise import LayerwiseDecay  # noqa: E402
from kerasbert import text  # noqa: E402
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor  # noqa: E402
from kerasbert.models.masked_lm_pretrainer import MaskedLMPretrainer  # noqa: E402
from kerasbert.models.multi_task_classifier import MultiTaskClassifier  # noqa: E402
from kerasbert.training.fine_tuning import fine_tune  # noqa: E402
from kerasbert.training.multitask import Task  # noqa: E402
from kerasbert.training.multitask import multitask_fine_tune  # noqa: E402
from kerasbert.training.pretraining import further_pretrain  # noqa: E402

__version__ = "0.1.0"

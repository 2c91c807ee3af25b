"""kerasbert: fine-tune BERT for text classification, after Sun et al. (2019)."""

import os as _os

# keras-hub preprocessing runs in TensorFlow; pin the Keras backend to match
# before Keras is first imported.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# ruff: noqa: E402
from kerasbert import data
from kerasbert import layers
from kerasbert import optimizers
from kerasbert import text
from kerasbert import tf1_checkpoint
from kerasbert import training
from kerasbert.backbones import load_backbone
from kerasbert.data.batching import make_batches
from kerasbert.data.datasets import LabeledTexts
from kerasbert.data.datasets import load_dataset
from kerasbert.data.datasets import read_labeled_texts
from kerasbert import prediction
from kerasbert.export import export_serving
from kerasbert.int8 import Int8Classifier
from kerasbert.int8 import export_int8
from kerasbert.models.build_classifier import build_classifier
from kerasbert.models.load_classifier import load_classifier
from kerasbert.models.feature_bilstm_classifier import FeatureBiLSTMClassifier
from kerasbert.models.layer_selected_classifier import LayerSelectedClassifier
from kerasbert.models.masked_lm_pretrainer import MaskedLMPretrainer
from kerasbert.models.multi_task_classifier import MultiTaskClassifier
from kerasbert.models.segment_pooling_classifier import SegmentPoolingClassifier
from kerasbert.optimizers import schedules
from kerasbert.optimizers.layerwise import LayerwiseDecay
from kerasbert.optimizers.layerwise import layerwise_decay
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.training.configs import FineTuneConfig
from kerasbert.training.configs import MultiTaskConfig
from kerasbert.training.configs import PretrainConfig
from kerasbert.training.driver import run_experiment
from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.multitask import TaskData
from kerasbert.training.multitask import multitask_fine_tune
from kerasbert.training.pretraining import further_pretrain
from kerasbert.training.run_directory import RunDirectory
from kerasbert.training.run_directory import RunDirectoryError
from kerasbert.training.training_loop import NonFiniteLossError
from kerasbert.training.training_loop import TrainingLoop
from kerasbert.training.training_run import TrainingRun

__version__ = "0.1.0"

__all__ = [
    "ClassifierPreprocessor",
    "FeatureBiLSTMClassifier",
    "FineTuneConfig",
    "LabeledTexts",
    "LayerSelectedClassifier",
    "LayerwiseDecay",
    "MaskedLMPretrainer",
    "MultiTaskClassifier",
    "MultiTaskConfig",
    "NonFiniteLossError",
    "PretrainConfig",
    "RunDirectory",
    "RunDirectoryError",
    "SegmentPoolingClassifier",
    "TaskData",
    "TrainingLoop",
    "TrainingRun",
    "build_classifier",
    "data",
    "export_serving",
    "export_int8",
    "Int8Classifier",
    "fine_tune",
    "further_pretrain",
    "layers",
    "layerwise_decay",
    "load_backbone",
    "load_classifier",
    "load_dataset",
    "make_batches",
    "multitask_fine_tune",
    "optimizers",
    "prediction",
    "read_labeled_texts",
    "run_experiment",
    "schedules",
    "text",
    "tf1_checkpoint",
    "training",
]

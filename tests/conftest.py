import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

import kerasbert  # noqa: E402, F401


@pytest.fixture
def tiny():
    """A seeded tiny backbone and its tokenizer."""
    keras.utils.set_random_seed(1)
    return kerasbert.load_backbone("tiny")

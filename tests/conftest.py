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


def pytest_collection_modifyitems(config, items):
    """Runs the slow tests first.

    Two xdist workers share the suite; a 60-second test that starts last
    leaves the other worker idle for its whole length. Longest first keeps
    the tail made of second-long tests (the stable sort keeps file order
    within each group, so fixtures and imports stay warm).
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

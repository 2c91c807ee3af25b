"""Every fenced python example in a public docstring runs offline."""

import inspect
import re

import keras
import keras_hub
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.data import corpus
from kerasbert.data import generator_dataset
from kerasbert.reproduction import charts
from kerasbert.reproduction import grids
from kerasbert.reproduction import reports
from kerasbert.reproduction import results
from kerasbert.reproduction import statistics

PUBLIC = {
    "kerasbert": kerasbert,
    "kerasbert.layers": kerasbert.layers,
    "kerasbert.optimizers": kerasbert.optimizers,
    "kerasbert.schedules": kerasbert.schedules,
    "kerasbert.text": kerasbert.text,
    "kerasbert.prediction": kerasbert.prediction,
    "kerasbert.data.corpus": corpus,
    "kerasbert.data.generator_dataset": generator_dataset,
    "kerasbert.reproduction.grids": grids,
    "kerasbert.reproduction.charts": charts,
    "kerasbert.reproduction.reports": reports,
    "kerasbert.reproduction.results": results,
    "kerasbert.reproduction.statistics": statistics,
}
EXAMPLE = re.compile(r"```python\n(.*?)```", re.S)


def examples():
    seen = set()
    for module_name, module in PUBLIC.items():
        for name, value in vars(module).items():
            if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if not getattr(value, "__module__", "").startswith("kerasbert") or value in seen:
                continue
            seen.add(value)
            for index, code in enumerate(EXAMPLE.findall(inspect.getdoc(value) or "")):
                yield pytest.param(code, id=f"{module_name}.{name}[{index}]")


@pytest.mark.parametrize("code", list(examples()))
def test_docstring_example_runs(code):
    keras.utils.set_random_seed(0)
    namespace = {"kerasbert": kerasbert, "keras": keras, "keras_hub": keras_hub, "tf": tf}
    exec(compile(inspect.cleandoc(code), "<docstring>", "exec"), namespace)


def test_public_classes_have_examples():
    documented = {p.id.split("[")[0] for p in examples()}
    for name in ("ClassifierPreprocessor", "LayerSelectedClassifier", "SegmentPoolingClassifier",
                 "layerwise_decay", "MaskedLMPretrainer", "MultiTaskClassifier", "load_backbone",
                 "load_dataset", "export_serving", "build_classifier", "load_classifier"):
        assert f"kerasbert.{name}" in documented, name

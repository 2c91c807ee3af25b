"""Run configs: one declaration per setting, checks, records, flags, and
the multi-task run honouring the settings it shares with fine-tuning."""

import dataclasses
import os
import sys

import keras
import numpy as np
import pytest
from absl import flags

import kerasbert
from kerasbert.training import configs
from kerasbert.training.multitask import MultiTaskExperiment
from tests.training.test_multitask import RUN
from tests.training.test_multitask import tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KINDS = (configs.FineTuneConfig, configs.MultiTaskConfig, configs.PretrainConfig)


def test_every_field_has_help_a_default_and_a_result_role():
    for kind in KINDS:
        for field in dataclasses.fields(kind):
            assert field.metadata["help"].strip(), (kind.__name__, field.name)
            assert "\n" not in field.metadata["help"]
            assert isinstance(field.metadata["changes_result"], bool)
            assert field.default is not dataclasses.MISSING or field.default_factory
        kind()  # every default passes its own checks


def test_shared_settings_are_declared_once():
    fine_tune, multitask = configs.FineTuneConfig(), configs.MultiTaskConfig()
    shared = set(fine_tune.field_names()) & set(multitask.field_names())
    assert {"schedule", "weight_decay", "truncation", "segment_pooling", "classifier",
            "freeze_backbone", "empty_text", "train_examples", "sparse_embedding_updates",
            "steps_per_loop"} <= shared
    for name in shared:
        a = configs.FineTuneConfig.__dataclass_fields__[name]
        b = configs.MultiTaskConfig.__dataclass_fields__[name]
        assert a.default == b.default and a.metadata == b.metadata, name
    # Pre-training re-declares only the paper's other defaults, with one help.
    pretrain = configs.PretrainConfig()
    assert (pretrain.learning_rate, pretrain.batch_size, pretrain.sequence_length) == (
        5e-5, 32, 128)
    assert (configs.PretrainConfig.__dataclass_fields__["learning_rate"].metadata["help"]
            == configs.FineTuneConfig.__dataclass_fields__["learning_rate"].metadata["help"])


@pytest.mark.parametrize("kind, changes, message", [
    (configs.FineTuneConfig, dict(learning_rate=float("nan")), "`learning_rate` must be"),
    (configs.FineTuneConfig, dict(seed=-1), r"`seed` must be an integer in \[0, 2\*\*32\)"),
    (configs.FineTuneConfig, dict(batch_size="24"), "`batch_size` must be a positive integer"),
    (configs.FineTuneConfig, dict(truncation="middle"), "`truncation` must be one of"),
    (configs.FineTuneConfig, dict(layers=(1, "2")), "`layers` must be an int"),
    (configs.FineTuneConfig, dict(sequence_length=2), "`sequence_length` must be at least 3"),
    (configs.FineTuneConfig, dict(export="yes"), "`export` must be True or False"),
    (configs.FineTuneConfig, dict(train_examples=10, train_examples_per_class=2),
     "give one of them"),
    (configs.FineTuneConfig, dict(classifier="feature_bilstm", truncation="segments"),
     "feature_bilstm"),
    (configs.PretrainConfig, dict(nsp=True, sequence_length=4), "at least 5 with `nsp`"),
    (configs.PretrainConfig, dict(steps=10, checkpoint_every=3), "multiple of"),
])
def test_a_bad_setting_is_one_line_naming_the_field(kind, changes, message):
    with pytest.raises(ValueError, match=message) as error:
        kind(**changes)
    assert "\n" not in str(error.value)


def test_records_fingerprint_only_result_changing_settings_and_round_trip():
    config = configs.FineTuneConfig(layers=(1, 2), text_fields=["title", "body"], verbose=0)
    record = config.to_dict()
    assert record["layers"] == [1, 2] and record["text_fields"] == ["title", "body"]
    result = config.result_dict()
    assert "layers" in result and "learning_rate" in result
    for neutral in ("verbose", "overwrite", "checkpoint_every_steps", "export",
                    "steps_per_loop", "train"):
        assert neutral not in result
    assert configs.FineTuneConfig.from_dict(record) == config
    with pytest.raises(ValueError, match=r"settings \['sparkle'\]"):
        configs.FineTuneConfig.from_dict({**record, "sparkle": 1})
    with pytest.raises(TypeError, match="unexpected keyword arguments.*learningrate"):
        kerasbert.fine_tune("tiny", None, "/nonexistent", learningrate=1e-3)


def _recipe_flags(config_class):
    sys.path.insert(0, os.path.join(ROOT, "recipes"))
    try:
        import config_flags
    finally:
        sys.path.pop(0)
    values = flags.FlagValues()
    config_flags.define_config_flags(config_class, flag_values=values)
    return values


def test_recipes_offer_every_shared_setting_with_one_name_default_and_help():
    fine_tune = _recipe_flags(configs.FineTuneConfig)
    multitask = _recipe_flags(configs.MultiTaskConfig)
    shared = set(configs.MultiTaskConfig.field_names()) & set(
        configs.FineTuneConfig.field_names())
    for name in shared:
        a, b = fine_tune[name], multitask[name]
        assert (a.default, a.help, type(a)) == (b.default, b.help, type(b)), name
    assert fine_tune["layers"].default == "-1" and fine_tune["text_fields"].default == ["text"]


def test_multitask_honours_the_shared_optimizer_and_classifier_settings():
    config = configs.MultiTaskConfig(
        backbone="tiny", schedule="slanted_triangular", weight_decay=0.01,
        freeze_backbone=True, truncation="head_tail", head_length=4, sequence_length=16,
        layer_decay=0.9, **{k: v for k, v in RUN.items() if k != "learning_rate"})
    experiment = MultiTaskExperiment(config, tasks())
    # A task's own length and truncation win; the run's fill the rest.
    assert experiment.task_text["sentiment"] == {
        "sequence_length": 16, "truncation": "head_tail", "head_length": 4}
    assert experiment.task_text["topic"]["truncation"] == "tail"
    model = experiment.build_model()
    optimizer = experiment.build_optimizer(model)
    assert "SlantedTriangular" in str(optimizer.inner_optimizer.get_config()["learning_rate"])
    assert optimizer.weight_decay == pytest.approx(0.01)
    backbone_variables = {id(v) for v in model.backbone.weights}
    assert model.freeze_backbone and model.trainable_weights
    assert not backbone_variables & {id(v) for v in model.trainable_weights}


@pytest.mark.slow
def test_multitask_freeze_backbone_and_sparse_updates_take_effect(tmp_path):
    frozen = kerasbert.multitask_fine_tune(
        "tiny", tasks(), str(tmp_path / "frozen"), freeze_backbone=True, **RUN)
    keras.utils.set_random_seed(0)  # the run's seed: the same new weights
    before, _ = kerasbert.load_backbone("tiny")
    after, _ = kerasbert.load_backbone(str(tmp_path / "frozen" / "shared_backbone"))
    for a, b in zip(before.weights, after.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert frozen["settings"]["freeze_backbone"] is True
    sparse = kerasbert.multitask_fine_tune(
        "tiny", tasks(), str(tmp_path / "sparse"), sparse_embedding_updates=True, **RUN)
    assert sparse["settings"]["sparse_embedding_updates"] is True
    dense = kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "dense"), **RUN)
    # Adam's momentum moves a row in steps whose batch does not look it up;
    # the lazy update leaves it: the two word-embedding tables differ.
    trained_sparse, _ = kerasbert.load_backbone(str(tmp_path / "sparse" / "shared_backbone"))
    trained_dense, _ = kerasbert.load_backbone(str(tmp_path / "dense" / "shared_backbone"))
    table = lambda b: b.get_layer("token_embedding").embeddings.numpy()  # noqa: E731
    assert not np.array_equal(table(trained_sparse), table(trained_dense))


def test_a_run_directory_of_an_earlier_format_is_refused_in_one_line(tmp_path):
    (tmp_path / "run.json").write_text('{"settings": {"seed": 0}, "data": {}, "stages": {}}')
    data = kerasbert.LabeledTexts(["good", "bad"] * 4, np.array([1, 0] * 4, np.int32),
                                  ["neg", "pos"], "example")
    with pytest.raises(kerasbert.RunDirectoryError, match="earlier kerasbert") as error:
        kerasbert.fine_tune("tiny", data, str(tmp_path), sequence_length=16, verbose=0)
    assert "\n" not in str(error.value)


def test_pretraining_fingerprints_what_its_corpus_identity_does_not_cover():
    result = configs.PretrainConfig().result_dict()
    assert {"text_fields", "data_dir", "checkpoint_every", "backbone_snapshots"} <= set(result)
    with pytest.raises(ValueError, match="`text_fields` must name at least one field"):
        configs.FineTuneConfig(text_fields="body")

"""Nothing lost: --overwrite checks the new run before it clears the old one,
clears only run directories, and a rerun redoes a stage whose files are gone."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from tests.training.test_fine_tuning import sentiment_data

RUN = dict(sequence_length=16, learning_rate=3e-3, batch_size=8, epochs=1, seed=0,
           export=False, verbose=0)


def finished_run(path, **changes):
    return kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(path),
                               validation=sentiment_data(8, 1), **{**RUN, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run trained once per module: `(directory, metrics)`."""
    path = tmp_path_factory.mktemp("finished")
    return path, finished_run(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A finished run with its SavedModel, trained once per module: `(directory, metrics)`."""
    path = tmp_path_factory.mktemp("exported")
    return path, finished_run(path, export=True)


def copy_of(run, path):
    """Copies the finished `run` to `path` (a copy is as finished as the original);
    returns its metrics."""
    source, metrics = run
    shutil.copytree(source, path, symlinks=True, dirs_exist_ok=True)
    return metrics


@pytest.mark.parametrize("changes, message", [
    (dict(sequence_length=100_000), "exceeds the backbone's position table"),
    (dict(backbone="nonexistent_xyz"), "nonexistent_xyz"),
])
def test_overwrite_that_fails_its_checks_leaves_the_finished_run(
        tmp_path, finished, changes, message):
    metrics = copy_of(finished, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    arguments = {**RUN, **changes}
    backbone = arguments.pop("backbone", "tiny")
    with pytest.raises(Exception, match=message):
        kerasbert.fine_tune(backbone, sentiment_data(24, 0), str(tmp_path),
                            validation=sentiment_data(8, 1), overwrite=True, **arguments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == metrics["epochs"]
    assert finished_run(tmp_path) == metrics  # still the finished run, returned as is


def test_overwrite_never_deletes_files_it_did_not_write(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": "pos"}\n')
    (tmp_path / "run.json").write_text('{"settings": {}, "data": {}, "stages": {}}')
    with pytest.raises(kerasbert.RunDirectoryError, match=r"holds files that no kerasbert run "
                                                          r"writes \(train.jsonl\)") as error:
        kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path), overwrite=True, **RUN)
    assert "\n" not in str(error.value)
    assert (tmp_path / "train.jsonl").exists()
    # Without --overwrite the refusal does not suggest it when other files are there.
    (tmp_path / "run.json").unlink()
    with pytest.raises(kerasbert.RunDirectoryError, match="choose another") as error:
        kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path), **RUN)
    assert "--overwrite" not in str(error.value)


def test_overwrite_clears_another_run_once_its_checks_pass(tmp_path, finished):
    copy_of(finished, tmp_path)
    metrics = kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path),
                                  overwrite=True, **{**RUN, "learning_rate": 1e-3})
    assert metrics["settings"]["learning_rate"] == 1e-3
    assert "best_epoch" not in metrics  # the new run has no validation data


@pytest.mark.slow
def test_overwrite_refuses_foreign_files_at_any_depth(tmp_path, finished):
    copy_of(finished, tmp_path)
    (tmp_path.parent / f"{tmp_path.name}_elsewhere").mkdir()
    for inside in ("preset/mine.txt", "logs/train.jsonl", "checkpoints/best/notes", "logs/link"):
        target = tmp_path / inside
        if inside.endswith("link"):
            target.symlink_to(tmp_path.parent / f"{tmp_path.name}_elsewhere")
        else:
            target.write_text("mine\n")
        with pytest.raises(kerasbert.RunDirectoryError,
                           match=rf"no kerasbert run writes \({inside}\)"):
            kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path), overwrite=True,
                                **{**RUN, "learning_rate": 1e-3})
        assert target.is_symlink() or target.read_text() == "mine\n"
        target.unlink()


@pytest.mark.slow
def test_overwrite_removes_only_what_the_ledger_names(tmp_path, finished):
    copy_of(finished, tmp_path)
    entries = json.loads((tmp_path / "run.json").read_text())["entries"]
    assert set(entries) >= {"checkpoints", "history.csv", "logs", "metrics.json", "preset"}
    # Folders named like the run's own, at the top or inside a finished
    # stage's folder: not in its ledger. Without a ledger of entries (a
    # damaged or older run.json), only the layout's fixed names are the run's.
    record = (tmp_path / "run.json").read_text()
    without_entries = json.dumps({k: v for k, v in json.loads(record).items() if k != "entries"})
    for mine, named, ledger in [
            ("saved_model_backup/saved_model.pb", "saved_model_backup", record),
            (".partial-mine/keep.txt", ".partial-mine", record),
            ("preset/.partial-mine/keep.txt", "preset/.partial-mine", record),
            ("preset/assets/tokenizer/vocabulary_old.txt", "preset/assets/tokenizer/"
                                                           "vocabulary_old.txt", record),
            ("saved_model_backup/saved_model.pb", "saved_model_backup", without_entries),
            ("saved_model_backup/saved_model.pb", "saved_model_backup", "{"),
    ]:
        (tmp_path / "run.json").write_text(ledger)
        target = tmp_path / mine
        target.parent.mkdir(exist_ok=True)
        target.write_text("mine\n")
        with pytest.raises(kerasbert.RunDirectoryError,
                           match=rf"no kerasbert run writes \({named}\)") as error:
            kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path), overwrite=True,
                                **{**RUN, "learning_rate": 1e-3})
        assert "\n" not in str(error.value)
        assert target.read_text() == "mine\n"
        shutil.rmtree(target.parent) if target.parent != tmp_path / "preset" / "assets" / \
            "tokenizer" else target.unlink()
    (tmp_path / "run.json").write_text(record)


@pytest.mark.slow
def test_a_same_size_edit_or_a_lost_history_is_repaired(tmp_path, finished):
    metrics = copy_of(finished, tmp_path)
    history = (tmp_path / "history.csv").read_bytes()
    weights = tmp_path / "preset" / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = bytes(4096)  # same size, other bytes
    weights.write_bytes(bytes(data))
    text = (tmp_path / "metrics.json").read_text()
    (tmp_path / "metrics.json").write_text(text.replace('"error": 0.', '"error": 9.', 1))
    edited = (tmp_path / "metrics.json").read_text()
    assert edited != text and len(edited) == len(text)
    (tmp_path / "history.csv").unlink()
    again = finished_run(tmp_path)
    assert again == metrics
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (tmp_path / "history.csv").read_bytes() == history
    original = kerasbert.load_classifier(str(finished[0]))
    repaired = kerasbert.load_classifier(str(tmp_path))
    for a, b in zip(original.get_weights(), repaired.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("lost", [
    ["metrics.json"], ["preset"], ["saved_model"],
    # Damaged inside: a file cut short, a file of a folder deleted.
    ["metrics.json:truncated", "preset/model.weights.h5",
     "saved_model/saved_model.pb:truncated"],
])
def test_a_rerun_redoes_the_stage_whose_files_were_deleted(tmp_path, exported, lost):
    metrics = copy_of(exported, tmp_path)
    sizes = {}
    for damage in lost:
        name, _, how = damage.partition(":")
        target = tmp_path / name
        # A SavedModel's graph names its functions by a per-process counter,
        # so its size may move by a few bytes: it is checked by serving.
        by_size = not target.is_dir() and not name.startswith("saved_model")
        sizes[name] = target.stat().st_size if by_size else None
        if how == "truncated":
            target.write_bytes(target.read_bytes()[:20])
        else:
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    again = finished_run(tmp_path, export=True)
    for name, size in sizes.items():
        target = tmp_path / name
        assert target.exists() and (size is None or target.stat().st_size == size), name
    assert again["epochs"] == metrics["epochs"] and again["validation"] == metrics["validation"]
    texts = tf.constant(["the film was good", "bad"])
    loaded = [tf.saved_model.load(str(run / "saved_model")) for run in (tmp_path, exported[0])]
    served, original = (model.serve(texts)["probabilities"] for model in loaded)
    np.testing.assert_allclose(served, original, atol=1e-6)
    classifier = kerasbert.load_classifier(str(tmp_path))
    assert classifier.label_names == ["pos", "neg"]


def test_overwrite_refuses_to_clear_its_own_input(tmp_path, finished):
    copy_of(finished, tmp_path / "run")
    backbone = tmp_path / "run" / "preset"  # a finished run's encoder, inside the run
    with pytest.raises(kerasbert.RunDirectoryError, match="holds this run's own input"):
        kerasbert.fine_tune(str(backbone), sentiment_data(24, 0), str(tmp_path / "run"),
                            overwrite=True, **{**RUN, "learning_rate": 1e-3})
    assert (backbone / "config.json").exists()


@pytest.mark.slow
def test_a_lost_stage_is_redone_with_every_stage_after_it(tmp_path, finished):
    copy_of(finished, tmp_path)
    shutil.rmtree(tmp_path / "checkpoints")
    metrics = finished_run(tmp_path)  # retrained: the later stages came from the lost one
    assert metrics["resumed_from_step"] == 0
    assert (tmp_path / "checkpoints").exists() and (tmp_path / "preset").exists()


@pytest.mark.slow
def test_unbounded_segments_of_a_huge_document_are_refused_before_training(tmp_path):
    from kerasbert.data.datasets import LabeledTexts

    data = sentiment_data(24, 0)
    huge = LabeledTexts(data.texts[:-1] + ["word " * 1000], data.labels, data.label_names,
                        "huge.jsonl")
    settings = {**RUN, "truncation": "segments"}
    with pytest.raises(ValueError, match=r"^huge.jsonl \(example 23\): the text has 1000 words, "
                                         r"at least 72 segments .*pass max_segments"):
        kerasbert.fine_tune("tiny", huge, str(tmp_path / "run"), **settings)
    assert not (tmp_path / "run").exists()
    # Bounded, it trains.
    metrics = kerasbert.fine_tune("tiny", huge, str(tmp_path / "run"), max_segments=4,
                                  **settings)
    assert metrics["settings"]["max_segments"] == 4


@pytest.mark.slow
def test_a_ledger_of_names_only_checks_that_the_files_exist(tmp_path, finished):
    copy_of(finished, tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["files"]["metrics"] == {
        name: {".": [(tmp_path / name).stat().st_size,
                     hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()]}
        for name in ("metrics.json", "history.csv")}
    # A ledger of sizes only (before digests) checks sizes.
    sizes_only = {stage: {name: {part: value[0] for part, value in manifest.items()}
                          for name, manifest in files.items()}
                  for stage, files in record["files"].items()}
    (tmp_path / "run.json").write_text(json.dumps({**record, "files": sizes_only}))
    assert finished_run(tmp_path)["epochs"]
    assert "trained" in json.loads((tmp_path / "run.json").read_text())["stages"]
    record["files"] = {stage: list(files) for stage, files in record["files"].items()}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert finished_run(tmp_path)["epochs"]  # names only: present, so the run is finished
    # Work in progress a kill left, and the `.npz` checkpoints of run format 1,
    # are the run's own: --overwrite clears them.
    (tmp_path / "checkpoints" / ".partial-step-9" / "variables_temp").mkdir(parents=True)
    (tmp_path / "checkpoints" / ".partial-step-9" / "variables_temp" / "part-0").write_text("x")
    (tmp_path / "checkpoints" / "step-00000009.npz").write_text("x")
    metrics = kerasbert.fine_tune("tiny", sentiment_data(24, 0), str(tmp_path), overwrite=True,
                                  **{**RUN, "learning_rate": 1e-3})
    assert metrics["settings"]["learning_rate"] == 1e-3
    assert not (tmp_path / "checkpoints" / "step-00000009.npz").exists()


def test_a_finished_run_says_so_and_returns_its_results(tmp_path, finished, capsys):
    metrics = copy_of(finished, tmp_path)
    assert finished_run(tmp_path, verbose=1) == metrics
    assert f"{tmp_path} holds this run, finished: its results, with nothing trained again." \
        in capsys.readouterr().out


@pytest.mark.slow
def test_a_changed_checkpoint_is_trained_again_not_resumed(tmp_path, finished):
    metrics = copy_of(finished, tmp_path)
    (state,) = (tmp_path / "checkpoints").glob("step-*/state.json")
    text = state.read_text()
    loss = str(metrics["epochs"][0]["loss"])
    edited = text.replace(loss, "9" + loss[1:], 1)  # same size, other figure
    assert edited != text and len(edited) == len(text)
    state.write_text(edited)
    again = finished_run(tmp_path)
    assert again["resumed_from_step"] == 0  # trained afresh, not from the edited state
    assert again["epochs"] == metrics["epochs"] and again["validation"] == metrics["validation"]


@pytest.mark.parametrize("content, message", [
    ("[]", "is damaged \\(the whole file"),
    ('{"settings": 5, "data": {}, "stages": {}}', "is damaged \\(settings not as"),
    ('{"settings": {}, "data": {}, "stages": {}, "entries": [["x"]]}', "is damaged \\(entries"),
])
def test_a_damaged_run_json_is_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(kerasbert.RunDirectoryError, match=rf"run.json {message}.*--overwrite"):
        finished_run(tmp_path)


@pytest.mark.slow
def test_a_finished_run_with_its_saved_model_is_all_the_runs_own(tmp_path, exported):
    from kerasbert.training.run_directory import foreign_files

    copy_of(exported, tmp_path)
    # Empty folders (the SavedModel's assets/) and a kill's work in progress
    # on the run's own names are the run's.
    (tmp_path / "checkpoints" / ".workertemp_1").mkdir()
    assert (tmp_path / "saved_model" / "assets").is_dir()
    assert foreign_files(str(tmp_path)) == []
    # A user's file in a finished stage's folder stops its repair, named.
    (tmp_path / "preset" / "notes.txt").write_text("mine\n")
    with pytest.raises(kerasbert.RunDirectoryError,
                       match=r"preset holds files that no kerasbert run writes \(notes.txt\)"):
        finished_run(tmp_path, export=True)
    assert (tmp_path / "preset" / "notes.txt").read_text() == "mine\n"


def test_a_run_json_naming_files_outside_the_run_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "settings": {}, "data": {}, "stages": {"trained": {}},
        "files": {"trained": {"../victim": {"keep.txt": [1, "0" * 64]}}}}))
    with pytest.raises(kerasbert.RunDirectoryError, match=r"run.json is damaged \(files"):
        finished_run(run)
    assert (victim / "keep.txt").read_text() == "mine\n"

import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.backbones import tiny_vocabulary
from kerasbert.training import pretraining
from kerasbert.training.training_loop import TrainingLoop
from tests.helpers import assert_config_round_trip
from tests.helpers import run_on_two_cpus

TEXTS = ["the film was good .", "who was galileo ?", "what is the name of the city ?"]


def test_masking_never_selects_special_tokens(tiny):
    _, tokenizer = tiny
    # Select and mask everything selectable, deterministically.
    inputs = pretraining.masked_lm_inputs(
        tokenizer, 16, nsp=True, mask_rate=1.0, max_predictions=16, mask_token_rate=1.0,
        random_token_rate=0.0,
    )
    x, y, sample_weight = inputs(tf.constant(TEXTS), tf.constant(["a b", "c", "d e f"]),
                                 tf.constant([0, 1, 0]), 0)
    vocabulary = tiny_vocabulary()
    special = {vocabulary.index(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    real = sample_weight["mlm"].numpy() > 0
    targets = y["mlm"].numpy()[real]
    assert targets.size > 0 and not set(targets.tolist()) & special
    token_ids = x["token_ids"].numpy()
    for row, positions, weights in zip(token_ids, x["mask_positions"].numpy(), real):
        assert set(row[positions[weights]].tolist()) == {vocabulary.index("[MASK]")}
        # [CLS] and [SEP] stay in place.
        assert row[0] == vocabulary.index("[CLS]")
    assert x["padding_mask"].dtype == tf.int32
    assert y["nsp"].numpy().tolist() == [0, 1, 0]


@pytest.mark.parametrize("whole_word_masking", [False, True])
def test_masks_are_drawn_from_the_seed_and_the_batch_index(tiny, whole_word_masking):
    # Fresh maps (as in a fresh process) mask batch i alike: what lets a
    # resumed run mask what an uninterrupted one masked.
    _, tokenizer = tiny
    texts = tf.constant(["the film was good . who was galileo ? what is the name of the city ?"] * 8)
    label = tf.zeros([8], tf.int64)

    def mask_positions(seed, batch_index):
        inputs = pretraining.masked_lm_inputs(tokenizer, 24, mask_rate=0.3, seed=seed,
                                              whole_word_masking=whole_word_masking)
        return inputs(texts, texts, label, batch_index)[0]["mask_positions"].numpy()

    first = mask_positions(0, 5)
    np.testing.assert_array_equal(first, mask_positions(0, 5))
    assert not np.array_equal(first, mask_positions(0, 6))
    assert not np.array_equal(first, mask_positions(1, 5))
    assert len({tuple(row) for row in first}) > 1  # rows of one batch differ


def test_seeded_mask_generator_selects_like_keras_hub(tiny):
    _, tokenizer = tiny
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    masker = kerasbert.text.SeededMaskGenerator(
        tokenizer.vocabulary_size(), mask_selection_rate=0.3, mask_selection_length=5,
        mask_token_id=tokenizer.mask_token_id, unselectable_token_ids=special,
        mask_token_rate=0.5, random_token_rate=0.5)
    token_ids = keras_hub.layers.MultiSegmentPacker(
        16, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
    )(tokenizer(tf.constant(TEXTS * 100)))[0]
    out = masker(token_ids, seed=tf.constant([3, 4]))
    selectable = ~np.isin(token_ids.numpy(), special)
    count = out["mask_weights"].numpy().sum(axis=1)
    # ceil(rate · selectable pieces), at most the selection length.
    np.testing.assert_array_equal(count, np.minimum(np.ceil(0.3 * selectable.sum(axis=1)), 5))
    positions = out["mask_positions"].numpy()
    rows = np.arange(len(positions))[:, None]
    real = out["mask_weights"].numpy() > 0
    assert selectable[rows, positions][real].all()
    np.testing.assert_array_equal(token_ids.numpy()[rows, positions][real],
                                  out["mask_ids"].numpy()[real])
    masked = out["token_ids"].numpy()[rows, positions][real]
    share = np.mean(masked == tokenizer.mask_token_id)
    assert 0.4 < share < 0.6  # half [MASK], half random ids
    assert_config_round_trip(masker)
    empty = masker(token_ids[:0], seed=tf.constant([3, 4]))
    assert empty["token_ids"].shape == (0, 16) and empty["mask_positions"].shape == (0, 5)
    for wrong, message in ((dict(mask_selection_length=None), "positive integer"),
                           (dict(mask_token_id=10**6), "must be in")):
        with pytest.raises(ValueError, match=message):
            kerasbert.text.SeededMaskGenerator(**{**masker.get_config(), **wrong})


def test_pretrainer_heads_and_tied_embeddings(tiny):
    backbone, _ = tiny
    model = kerasbert.MaskedLMPretrainer(backbone, nsp=True)
    assert set(model.output.keys() if isinstance(model.output, dict) else []) == {"mlm", "nsp"}
    head = model.get_layer("mlm_head")
    assert head.token_embedding is backbone.token_embedding


@pytest.mark.slow
def test_mlm_loss_falls_and_backbone_reloads_identically(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 20))
    metrics = kerasbert.further_pretrain(
        "tiny", [(str(corpus_file), 1.0)], str(tmp_path / "run"), steps=60, warmup_steps=5,
        learning_rate=3e-3, batch_size=8, sequence_length=16, checkpoint_every=20,
        verbose=0,
    )
    losses = [row["loss"] for row in metrics["history"]]
    assert [row["step"] for row in metrics["history"]] == [20, 40, 60]
    assert losses[-1] < 0.7 * losses[0]
    backbone, tokenizer = kerasbert.load_backbone(str(tmp_path / "run" / "backbone"))
    trained = kerasbert.MaskedLMPretrainer.from_config(
        {"backbone": kerasbert.load_backbone("tiny")[0]}
    )
    # The last step checkpoint holds the same weights as the exported backbone.
    TrainingLoop(trained, str(tmp_path / "run"), steps_per_epoch=20,
                 epochs=3).restore(model_only=True)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(TEXTS)
    np.testing.assert_allclose(
        backbone(features)["sequence_output"],
        trained.backbone(features)["sequence_output"], atol=1e-6,
    )


class KillAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt("simulated kill")


class StepRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_begin(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))


@pytest.mark.slow
def test_killed_pretraining_resumes_at_last_checkpoint(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 20))
    run = dict(steps=6, warmup_steps=1, batch_size=4, sequence_length=16,
               checkpoint_every=2, keep_checkpoints=10, verbose=0)
    output = str(tmp_path / "run")
    run["backbone_snapshots"] = True
    with pytest.raises(KeyboardInterrupt):
        kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output,
                                   callbacks=[KillAtStep(5)], **run)
    assert sorted(os.listdir(os.path.join(output, "snapshots"))) == ["step_2", "step_4"]
    checkpoint_dir = os.path.join(output, "checkpoints")
    assert sorted(os.listdir(checkpoint_dir)) == [
        "latest.json", "step-00000002", "step-00000004"
    ]
    written = os.path.getmtime(os.path.join(checkpoint_dir, "step-00000004", "state.json"))
    recorder = StepRecorder()
    metrics = kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output,
                                         callbacks=[recorder], **run)
    assert metrics["resumed_from_step"] == 4 and metrics["final_step"] == 6
    assert recorder.steps == [4, 5]  # steps 0-3 not repeated, none skipped
    assert sorted(os.listdir(checkpoint_dir))[1:] == [
        "step-00000002", "step-00000004", "step-00000006"
    ]
    assert os.path.getmtime(os.path.join(checkpoint_dir, "step-00000004", "state.json")) == written
    assert [row["step"] for row in metrics["history"]] == [2, 4, 6]
    # Every checkpoint's encoder is kept; the last one is the final encoder.
    assert sorted(os.listdir(os.path.join(output, "snapshots"))) == ["step_2", "step_4", "step_6"]
    from kerasbert.training.run_directory import foreign_files
    assert foreign_files(output) == []  # all in the run's ledger: --overwrite clears it
    final, _ = kerasbert.load_backbone(os.path.join(output, "backbone"))
    last, _ = kerasbert.load_backbone(os.path.join(output, "snapshots", "step_6"))
    first, _ = kerasbert.load_backbone(os.path.join(output, "snapshots", "step_2"))
    for a, b in zip(final.weights, last.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(final.weights, first.weights))
    # As if never stopped: the same encoder and history as an uninterrupted run.
    run["backbone_snapshots"] = False
    whole = kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)],
                                       str(tmp_path / "whole"), **run)
    assert whole["history"] == metrics["history"]
    uninterrupted, _ = kerasbert.load_backbone(str(tmp_path / "whole" / "backbone"))
    for a, b in zip(final.weights, uninterrupted.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_steps_must_be_a_multiple_of_checkpoint_every(tmp_path):
    with pytest.raises(ValueError, match="multiple of `checkpoint_every`"):
        kerasbert.further_pretrain("tiny", [("x.txt", 1.0)], str(tmp_path), steps=10,
                                   warmup_steps=1, checkpoint_every=3)


def test_whole_word_masking_masks_every_piece_of_a_word_together():
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "gal", "##ile", "##o", "was",
                  "here", "un", "##real"]
    masker = kerasbert.text.WholeWordMaskGenerator(
        vocabulary, mask_selection_rate=0.5, mask_selection_length=4, mask_token_id=4,
        unselectable_token_ids=[0, 2, 3], mask_token_rate=1.0, random_token_rate=0.0, seed=3,
    )
    # [CLS] gal ##ile ##o was here un ##real [SEP] [PAD]
    row = [2, 5, 6, 7, 8, 9, 10, 11, 3, 0]
    words = [[1, 2, 3], [4], [5], [6, 7]]
    token_ids = tf.constant([row] * 64)
    out = masker(token_ids)
    masked = out["token_ids"].numpy() == 4
    assert not masked[:, [0, 8, 9]].any()  # [CLS], [SEP], [PAD]
    for word in words:
        assert (masked[:, word].all(axis=1) == masked[:, word].any(axis=1)).all()
    assert (masked.sum(axis=1) <= 4).all() and masked.any()
    weights = out["mask_weights"].numpy()
    assert (weights.sum(axis=1) == masked.sum(axis=1)).all()
    positions = out["mask_positions"].numpy()
    ids = out["mask_ids"].numpy()
    for r in range(64):
        real = weights[r] > 0
        assert (np.array(row)[positions[r][real]] == ids[r][real]).all()
    assert assert_config_round_trip(masker).vocabulary == vocabulary


@pytest.mark.slow
def test_whole_word_masking_pretraining_runs(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 5))
    metrics = kerasbert.further_pretrain(
        "tiny", [(str(corpus_file), 1.0)], str(tmp_path / "run"), steps=4, warmup_steps=1,
        batch_size=4, sequence_length=16, checkpoint_every=2, nsp=True,
        whole_word_masking=True, verbose=0,
    )
    assert metrics["final_step"] == 4 and np.isfinite(metrics["history"][-1]["loss"])


MIRRORED_PRETRAIN = """
import sys
import numpy as np, kerasbert
from kerasbert.training.distribute import make_strategy
metrics = kerasbert.further_pretrain(
    "tiny", [(sys.argv[1], 1.0)], sys.argv[2], steps=4, warmup_steps=1, batch_size=4,
    sequence_length=16, checkpoint_every=2, nsp=True, strategy=make_strategy("mirrored"),
    verbose=0)
assert metrics["final_step"] == 4 and np.isfinite(metrics["history"][-1]["loss"])
"""


@pytest.mark.slow
def test_pretraining_under_mirrored_strategy_on_two_cpus(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 5))
    result = run_on_two_cpus(MIRRORED_PRETRAIN, str(corpus_file), str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_finished_pretraining_is_reused_only_with_the_same_settings_and_corpus(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 5))
    run = dict(steps=2, warmup_steps=1, batch_size=4, sequence_length=16,
               checkpoint_every=2, verbose=0)
    output = str(tmp_path / "run")
    first = kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output, **run)
    # The same call returns the finished run's metrics without training.
    recorder = StepRecorder()
    assert kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output,
                                      callbacks=[recorder], **run) == first
    assert recorder.steps == []
    with pytest.raises(kerasbert.RunDirectoryError, match="learning_rate: 5e-05 → 0.0001"):
        kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output,
                                   **{**run, "learning_rate": 1e-4})
    corpus_file.write_text("".join(f"{t}\n\n" for t in TEXTS * 6))
    with pytest.raises(kerasbert.RunDirectoryError, match="sources: "):
        kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], output, **run)
    with pytest.raises(FileNotFoundError, match="'missing.txt' is not a file"):
        kerasbert.further_pretrain("tiny", [("missing.txt", 1.0)], str(tmp_path / "new"), **run)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_bad_corpus_line_found_mid_run_fails_in_one_line(tmp_path):
    # Only the first document is checked before training; the rest is read
    # by tf.data, whose error would carry the generator's traceback.
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_bytes("".join(f"{t}\n\n" for t in TEXTS * 3).encode() + b"bad \xff line\n")
    with pytest.raises(ValueError, match=r"^\S*corpus.txt:19: invalid UTF-8 at byte 4 ") as error:
        kerasbert.further_pretrain("tiny", [(str(corpus_file), 1.0)], str(tmp_path / "run"),
                                   steps=4, warmup_steps=1, batch_size=4, sequence_length=16,
                                   checkpoint_every=2, verbose=0)
    assert "Traceback" not in str(error.value)

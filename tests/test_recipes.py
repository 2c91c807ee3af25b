"""The recipes as users run them: subprocesses with flags."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREC = os.path.join(ROOT, "data", "trec")


def run_recipe(name, *flags, timeout=900):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", name), *flags],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    return result


def trec_subset(directory, train_examples, test_examples=0):
    """A directory with the first TREC training lines as train (and test)."""
    directory.mkdir()
    with open(os.path.join(TREC, "train.jsonl")) as source:
        lines = source.readlines()
    (directory / "train.jsonl").write_text("".join(lines[:train_examples]))
    if test_examples:
        test_lines = lines[train_examples:train_examples + test_examples]
        (directory / "test.jsonl").write_text("".join(test_lines))
    return directory


@pytest.mark.slow
def test_finetune_recipe_writes_metrics_and_saved_model(tmp_path):
    small = trec_subset(tmp_path / "small", 300, 60)
    out = tmp_path / "run"
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={small}", f"--test={small}",
        "--epochs=2", "--batch_size=16", "--learning_rate=1e-3", "--layers=last4",
        "--combine=max", "--truncation=head_tail", "--head_length=16",
        "--sequence_length=64", "--layer_decay=0.9", "--layer_decay_convention=official_code",
        "--schedule=slanted_triangular", "--weight_decay=0.01", f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test error:" in result.stdout
    # The per-layer rate table is logged at start (L = 2, ξ = 0.9).
    assert "transformer_layer_0" in result.stderr and "0.9000" in result.stderr
    # ... and none of TensorFlow's start-up or SavedModel internals.
    for noise in ("cuda", "cpu_feature_guard", "functional_saver", "signature_serialization",
                  "builder_impl", "fingerprinting_utils"):
        assert noise not in result.stderr.lower(), noise
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert set(metrics["epochs"][0]) >= {"loss", "accuracy", "val_accuracy", "val_error"}
    assert metrics["settings"]["layers"] == "last4"
    assert metrics["test"]["examples"] == 60
    assert (out / "saved_model" / "saved_model.pb").exists()
    assert json.loads((out / "preset" / "task.json").read_text())["config"]["label_names"] == (
        metrics["label_names"])


@pytest.mark.slow
def test_finetune_recipe_names_bad_input(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "X"}\n{"txt": "b", "label": "Y"}\n')
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={tmp_path}", f"--output_dir={tmp_path}/o"
    )
    assert result.returncode != 0
    assert "train.jsonl:2: missing field(s) ['text']" in result.stderr


@pytest.mark.slow
def test_finetune_recipe_long_text_shorthand_selects_hierarchical_model(tmp_path):
    small = trec_subset(tmp_path / "small", 120)
    out = tmp_path / "run"
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={small}", "--epochs=1",
        "--long_text=segments_max", "--sequence_length=8", "--max_segments=4",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert (settings["truncation"], settings["segment_pooling"]) == ("segments", "max")
    assert settings["max_segments"] == 4
    assert (out / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_further_pretrain_then_finetune_from_its_backbone(tmp_path):
    small = trec_subset(tmp_path / "small", 200, 40)
    pretrained = tmp_path / "pretrained"
    result = run_recipe(
        "further_pretrain.py", "--backbone=tiny", f"--corpus={small / 'train.jsonl'}",
        f"--corpus={small / 'test.jsonl'}@0.5", "--nsp", "--steps=4", "--warmup_steps=1",
        "--checkpoint_every=2", "--batch_size=4", "--sequence_length=32",
        "--mixed_precision=mixed_bfloat16", "--jit_compile", f"--output_dir={pretrained}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["final_step"] == 4
    assert {"mlm_accuracy", "nsp_accuracy"} <= set(metrics["history"][-1])
    assert all(np.isfinite(row["loss"]) for row in metrics["history"])
    assert metrics["settings"]["mixed_precision"] == "mixed_bfloat16"
    result = run_recipe(
        "finetune.py", f"--backbone={pretrained / 'backbone'}", f"--train={small}",
        f"--test={small}", "--epochs=1", "--sequence_length=32", f"--output_dir={tmp_path / 'ft'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test error:" in result.stdout


@pytest.mark.slow
def test_multitask_recipe_joint_then_per_task(tmp_path):
    small = trec_subset(tmp_path / "small", 160, 30)
    sentiment = tmp_path / "sentiment.jsonl"
    sentiment.write_text("".join(
        json.dumps({"text": f"the film was {w}", "label": w}) + "\n" for w in ["good", "bad"] * 30
    ) + json.dumps({"text": "", "label": "good"}) + "\n")
    out = tmp_path / "run"
    command = [
        "multitask.py", "--backbone=tiny", f"--task=trec:{small}:{small}",
        f"--task=sentiment:{sentiment}", "--task_sequence_length=sentiment=16",
        "--task_truncation=sentiment=tail", "--sequence_length=32", "--epochs=1",
        "--batch_size=8", "--then_finetune", "--sampling=uniform", f"--output_dir={out}",
        "--train_examples=50", "--task_train_examples=trec=100",
        "--schedule=slanted_triangular", "--weight_decay=0.01",
    ]
    # The settings multi-task shares with fine-tuning: the empty text is
    # refused by default, kept with --empty_text=keep.
    result = run_recipe(*command)
    assert result.returncode == 1 and "empty" in result.stderr, result.stderr[-3000:]
    result = run_recipe(*command, "--empty_text=keep")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trec (joint): validation error" in result.stdout
    assert "{" not in result.stdout  # a summary, not the JSON record
    metrics = json.loads((out / "metrics.json").read_text())
    # Subsets before the 10 % validation carve: trec 100 → 90, sentiment 50 → 45.
    assert metrics["settings"]["tasks"]["trec"]["train_examples"] == 90
    assert metrics["settings"]["tasks"]["sentiment"]["train_examples"] == 45
    assert metrics["settings"]["schedule"] == "slanted_triangular"
    assert metrics["settings"]["weight_decay"] == 0.01
    finetuned = json.loads((out / "finetuned_trec" / "metrics.json").read_text())["settings"]
    assert (finetuned["schedule"], finetuned["weight_decay"]) == ("slanted_triangular", 0.01)
    assert metrics["task_weights"] == {"trec": 0.5, "sentiment": 0.5}
    assert np.isfinite(metrics["joint_epochs"][0]["loss"])
    assert {"val_trec_accuracy", "val_sentiment_accuracy"} <= set(metrics["joint_epochs"][0])
    assert set(metrics["joint"]["trec"]) == {"validation", "test"}
    assert metrics["finetuned"]["trec"]["test"]["examples"] == 30
    assert metrics["settings"]["tasks"]["sentiment"]["truncation"] == "tail"
    for path in ("saved_model_trec", "saved_model_sentiment", "finetuned_trec/saved_model",
                 "shared_backbone"):
        assert (out / path).exists(), path
    # Every file of the finished run is in its ledger (nested runs in theirs):
    # --overwrite would clear it all.
    from kerasbert.training.run_directory import foreign_files
    assert foreign_files(str(out)) == []


def test_multitask_task_flag_parsing():
    sys.path.insert(0, os.path.join(ROOT, "recipes"))
    try:
        import multitask
    finally:
        sys.path.pop(0)
    assert multitask.parse_task("imdb:tfds:imdb_reviews") == ("imdb", "tfds:imdb_reviews", None)
    assert multitask.parse_task("t:a/train.jsonl:a/test.jsonl") == (
        "t", "a/train.jsonl", "a/test.jsonl")
    with pytest.raises(ValueError, match="NAME:TRAIN_SPEC"):
        multitask.parse_task("nameonly")


def finetune_command(train_dir, output_dir, *extra):
    return [
        sys.executable, os.path.join(ROOT, "recipes", "finetune.py"), "--backbone=tiny",
        f"--train={train_dir}", f"--test={train_dir}", "--epochs=2", "--batch_size=16",
        "--sequence_length=32", "--learning_rate=1e-3", "--checkpoint_every_steps=3",
        f"--output_dir={output_dir}", *extra,
    ]


def kill_when(command, condition, timeout=300):
    """Start `command`; SIGKILL it as soon as `condition()` holds. Returns the
    process, killed or finished."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.output, _ = process.communicate(timeout=timeout)
    return process


def stages(run_dir):
    try:
        return json.loads((run_dir / "run.json").read_text())["stages"]
    except (OSError, ValueError):
        return {}


def checkpoint_step(run_dir):
    try:
        return json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"]
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_finetune_killed_at_any_stage_ends_as_if_never_stopped(tmp_path):
    import kerasbert

    small = trec_subset(tmp_path / "small", 200, 40)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert subprocess.run(finetune_command(small, whole), cwd=ROOT,
                          capture_output=True).returncode == 0

    # 1. Two runs started together on one directory: one is refused at once,
    #    naming the other; the other is killed -9 mid-epoch (epochs are 12
    #    steps), after the checkpoint of step 3.
    runs = [subprocess.Popen(finetune_command(small, killed), cwd=ROOT, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)]
    while all(run.poll() is None for run in runs):
        time.sleep(0.02)
    refused = next(run for run in runs if run.poll() is not None)
    holder = next(run for run in runs if run is not refused)
    assert refused.returncode == 1
    message = refused.stderr.read()
    assert f"is in use by process {holder.pid} on" in message and "Traceback" not in message
    while checkpoint_step(killed) < 3 and holder.poll() is None:
        time.sleep(0.02)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert 3 <= checkpoint_step(killed) < 24 and not (killed / "metrics.json").exists()

    # 2. kill -9 between training and metrics.json; 3. during the export.
    step = checkpoint_step(killed)
    resumed = kill_when(finetune_command(small, killed), lambda: "trained" in stages(killed))
    assert "trained" in stages(killed)
    assert f"Resuming from step {step} of 24 " in resumed.output, resumed.output[-2000:]
    kill_when(finetune_command(small, killed), lambda: (killed / ".partial-saved_model").exists())
    finished = subprocess.run(finetune_command(small, killed), cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    expected = json.loads((whole / "metrics.json").read_text())
    metrics = json.loads((killed / "metrics.json").read_text())
    for key in ("epochs", "best_epoch", "validation", "label_names"):
        assert metrics[key] == expected[key], key
    assert {k: v for k, v in metrics["test"].items() if k != "seconds"} == {
        k: v for k, v in expected["test"].items() if k != "seconds"}
    assert metrics["resumed_from_step"] > 0
    assert (killed / "history.csv").read_text() == (whole / "history.csv").read_text()
    expected_model = kerasbert.load_classifier(str(whole))
    model = kerasbert.load_classifier(str(killed))
    for a, b in zip(expected_model.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (killed / "saved_model" / "saved_model.pb").exists()
    assert not [n for n in os.listdir(killed) if n.startswith(".partial-")]


@pytest.mark.slow
def test_an_interrupted_recipe_says_where_its_progress_is(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    code = ("import sys; import recipe_main; recipe_main.define_recipe_flags(); "
            "recipe_main.flags.DEFINE_string('output_dir', None, 'the run'); "
            "recipe_main.FLAGS(sys.argv); print(recipe_main.interrupted_message('finetune.py'))")

    def message():
        result = subprocess.run(
            [sys.executable, "-c", code, f"--output_dir={tmp_path / 'run'}"],
            cwd=os.path.join(ROOT, "recipes"), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip()

    assert "interrupted before the first checkpoint" in message()
    (tmp_path / "run" / "checkpoints" / "latest.json").write_text(
        json.dumps({"checkpoint": "step-00000205", "step": 205}))
    assert message() == (f"finetune.py: interrupted; progress up to step 205 is saved in "
                         f"{tmp_path / 'run'}: run the same command to resume.")


@pytest.mark.slow
def test_recipes_fail_in_one_line_and_leave_nothing(tmp_path):
    small = trec_subset(tmp_path / "small", 40)
    out = tmp_path / "run"
    for flag, message in [
        ("--learning_rate=nan", "`learning_rate` must be a finite number > 0. Received: nan"),
        ("--layers=abc", "`layers` must be an int"),
    ]:
        result = run_recipe("finetune.py", "--backbone=tiny", f"--train={small}", flag,
                            f"--output_dir={out}")
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines()
                  if line.startswith("finetune.py: error:")]
        assert len(errors) == 1 and errors[0].startswith(
            f"finetune.py: error: ValueError: {message}"), result.stderr[-2000:]
        assert "Traceback" not in result.stderr and not out.exists()
    result = run_recipe("multitask.py", "--backbone=tiny", f"--task=a:{small}",
                        f"--task=a:{small}", f"--output_dir={out}", "--traceback")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "--task names 'a' twice" in result.stderr


@pytest.mark.slow
def test_predict_recipe_on_a_file_and_on_stdin(tmp_path):
    import kerasbert

    classifier = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["bad", "good"], sequence_length=16)
    classifier.save_to_preset(str(tmp_path / "model"))
    texts = [f"the film was {w} {i}" for i, w in enumerate(["good", "bad"] * 20)]
    records = tmp_path / "reviews.jsonl"
    records.write_text("".join(json.dumps({"review": t, "label": t.split()[3]}) + "\n"
                               for t in texts))
    out = tmp_path / "out" / "predictions.jsonl"
    result = run_recipe("predict.py", f"--model={tmp_path / 'model'}", f"--input={records}",
                        "--text_fields=review", "--label_field=label", "--batch_size=7",
                        f"--output={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cuda" not in result.stderr.lower() and "cpu_feature_guard" not in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["location"] for r in rows] == [f"{records}:{i}" for i in range(1, 41)]
    logits = classifier.predict(texts, verbose=0)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose([[r["probabilities"][n] for n in ("bad", "good")] for r in rows],
                               expected, atol=1e-5)
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    counts = np.array(evaluation["confusion_matrix"]["counts"])
    assert counts.sum() == 40 and counts.sum(axis=1).tolist() == [20, 20]
    predicted = [r["label"] for r in rows]
    truth = [t.split()[3] for t in texts]
    assert evaluation["accuracy"] == pytest.approx(np.mean(np.array(predicted) == truth))
    assert (tmp_path / "out" / "evaluation.png").stat().st_size > 0
    assert "| true \\ predicted | bad | good |" in (tmp_path / "out" / "evaluation.md").read_text()
    # A log can hold its output (no redrawn bar, no "5/Unknown"), and the
    # predictions file has the permissions of any file the user makes.
    assert "\r" not in result.stdout and "\x08" not in result.stdout
    assert "Unknown" not in result.stdout and "texts/s" in result.stdout
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask

    stdin = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "predict.py"),
         f"--model={tmp_path / 'model'}", "--input=-", "--output=-"],
        input="the film was good 0\nthe film was bad 1\n", capture_output=True, text=True,
        cwd=ROOT, timeout=600)
    assert stdin.returncode == 0, stdin.stderr[-3000:]
    lines = [json.loads(line) for line in stdin.stdout.splitlines()]
    assert [r["location"] for r in lines] == ["<stdin>:1", "<stdin>:2"]
    np.testing.assert_allclose([lines[0]["probabilities"][n] for n in ("bad", "good")],
                               expected[0], atol=1e-5)

    records.write_text('{"review": "fine", "label": "good"}\n{"text": "oops"}\n')
    bad = run_recipe("predict.py", f"--model={tmp_path / 'model'}", f"--input={records}",
                     "--text_fields=review", f"--output={tmp_path / 'bad.jsonl'}")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("predict.py: error: ValueError: ")
    assert f"{records}:2: missing field(s) ['review']" in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()

    # --output is the file standard input reads: refused, the file untouched.
    plain = tmp_path / "texts.txt"
    plain.write_text("the film was good\n")
    with open(plain) as stdin_file:
        same = subprocess.run(
            [sys.executable, os.path.join(ROOT, "recipes", "predict.py"),
             f"--model={tmp_path / 'model'}", "--input=-", f"--output={plain}"],
            stdin=stdin_file, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert same.returncode == 1 and "is the input file (standard input" in same.stderr
    assert plain.read_text() == "the film was good\n"
    # The training's empty-text rule: invisible characters only is empty.
    plain.write_text("fine\n\u200b\u200d\n")
    blank = run_recipe("predict.py", f"--model={tmp_path / 'model'}", f"--input={plain}",
                       f"--output={tmp_path / 'blank.jsonl'}")
    assert blank.returncode == 1 and f"{plain}:2: empty text (only invisible" in blank.stderr
    kept = run_recipe("predict.py", f"--model={tmp_path / 'model'}", f"--input={plain}",
                      "--empty_text=keep", f"--output={tmp_path / 'blank.jsonl'}")
    assert kept.returncode == 0 and len((tmp_path / "blank.jsonl").read_text().splitlines()) == 2
    # Without --empty_text, the rule the model's training run recorded (its
    # metrics.json, in --model or the folder above).
    (tmp_path / "metrics.json").write_text(json.dumps({"settings": {"empty_text": "keep"}}))
    recorded = run_recipe("predict.py", f"--model={tmp_path / 'model'}", f"--input={plain}",
                          f"--output={tmp_path / 'recorded.jsonl'}")
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    assert len((tmp_path / "recorded.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_quiet_start_leaves_the_runtime_unstarted_for_multi_worker():
    # MultiWorkerMirroredStrategy configures collective ops, which TensorFlow
    # allows only before its runtime starts.
    code = ("import sys; sys.argv = ['x']; import recipe_main; "
            "from tensorflow.python.eager import context; "
            "assert context.context()._context_handle is None")
    result = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "recipes"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cuda" not in result.stderr.lower()


# Lines TensorFlow's C++ runtime prints on a CPU machine, at start-up and later.
RUNTIME_NOISE = [
    "E0000 00:00:1796445820.436328   17872 util.cc:131] oneDNN supports DT_INT64 only on "
    "platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
    "2026-01-31 12:00:00.000000: E external/local_xla/xla/stream_executor/cuda/"
    "cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]
# What a worker's runtime prints when its peer is killed (TF 2.21): the
# recipe says it in one line of its own (a WorkerLostError).
PEER_ABORT_DUMP = [
    "E0000 00:00:1796577846.169298   10131 base_collective_executor.cc:252] "
    "BaseCollectiveExecutor::StartAbort UNAVAILABLE: Error reported from /job:worker/task:1: "
    "The following tasks are unhealthy (stopped sending heartbeats):",
    "/job:worker/replica:0/task:1",
    "The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. "
    "preemption, eviction) to debug further. [type.googleapis.com/tensorflow.CoordinationServic"
    "eError='\"\\n\\n\\x06worker\\x10\\x01']",
    "E0000 00:00:1796577846.169391   10131 ring_alg.cc:291] Aborting RingReduce with UNAVAILABLE:"
    " Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks "
    "are unhealthy (stopped sending heartbeats):",
    "/job:worker/replica:0/task:1",
    "The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. "
    "preemption, eviction) to debug further.",
    "The error could be from a previous operation. Restart your program to reset. "
    "[type.googleapis.com/tensorflow.DerivedStatus='']",
]


@pytest.mark.slow
@pytest.mark.parametrize("verbosity", [[], ["--verbosity=1"]], ids=["default", "verbose"])
def test_runtime_noise_stays_off_the_console_for_the_whole_run(verbosity):
    # Written to file descriptor 2 after start-up, as the C++ runtime does;
    # a real error, Python's own lines and a fatal line before an abort get through.
    # A dump cut short (no closing payload) does not hide the line after it.
    cut_short = PEER_ABORT_DUMP[3:5] + ["x.py: error: WorkerLostError: worker 1 stopped"]
    lines = RUNTIME_NOISE + PEER_ABORT_DUMP + cut_short + [
        "E0000 00:00:1796445821.5   17872 op_kernel.cc:1] real failure"]
    code = (f"import os, sys; sys.argv = ['x'] + {verbosity!r}; import recipe_main; "
            f"[os.write(2, (line + '\\n').encode()) for line in {lines!r}]; "
            "print('from python', file=sys.stderr, flush=True); "
            "os.write(2, b'F0000 00:00:1796445822.1   17872 cuda_driver.cc:9] fatal: cuInit\\n'); "
            "os.abort()")
    result = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "recipes"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGABRT
    shown = result.stderr.splitlines()
    assert shown[-3:] == [lines[-1], "from python", "F0000 00:00:1796445822.1   17872 "
                          "cuda_driver.cc:9] fatal: cuInit"], result.stderr
    assert shown[:-3] == ([cut_short[-1]] if not verbosity else lines[:-1]), result.stderr


@pytest.mark.slow
def test_finetune_from_run_repeats_the_recorded_settings_and_data(tmp_path):
    small = trec_subset(tmp_path / "small", 80, 20)
    first, again = tmp_path / "first", tmp_path / "again"
    result = run_recipe(
        "finetune.py", "--backbone=tiny", f"--train={small}", f"--test={small}",
        "--epochs=1", "--batch_size=16", "--sequence_length=24", "--learning_rate=1e-3",
        "--layers=last4", "--long_text=head_tail", "--head_length=8", "--export=false",
        f"--output_dir={first}")
    assert result.returncode == 0, result.stderr[-3000:]
    # A person's summary, not the JSON record.
    assert "test error:" in result.stdout and "outputs:" in result.stdout
    assert "per_example_correct" not in result.stdout
    result = run_recipe("finetune.py", f"--from_run={first}", f"--output_dir={again}")
    assert result.returncode == 0, result.stderr[-3000:]
    one = json.loads((first / "metrics.json").read_text())
    two = json.loads((again / "metrics.json").read_text())
    assert one["settings"] == two["settings"]
    assert one["settings"]["truncation"] == "head_tail"
    assert one["test"]["per_example_correct"] == two["test"]["per_example_correct"]
    assert [e["loss"] for e in one["epochs"]] == [e["loss"] for e in two["epochs"]]
    # A flag given beside --from_run replaces the recorded value.
    result = run_recipe("finetune.py", f"--from_run={first}", "--seed=1",
                        f"--output_dir={tmp_path / 'seed1'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "seed1" / "metrics.json").read_text())["settings"]["seed"] == 1
    result = run_recipe("finetune.py", f"--from_run={small}", f"--output_dir={tmp_path / 'x'}")
    assert result.returncode == 1 and "holds no finished run" in result.stderr


@pytest.mark.slow
def test_contradicting_long_text_flags_are_refused_before_any_work(tmp_path):
    for flags_, message in [
        (["--long_text=head", "--truncation=tail"], "--long_text=head sets --truncation=head"),
        (["--long_text=segments_max", "--segment_pooling=attention"],
         "--long_text=segments_max sets --segment_pooling=max"),
        # A flag that another setting makes a no-op.
        (["--head_length=40"], "--head_length=40 has no effect with --truncation=head; it "
                               "needs --truncation=head_tail"),
        (["--freeze_backbone", "--layer_decay=0.9"],
         "--layer_decay=0.9 has no effect with --freeze_backbone=true"),
    ]:
        result = run_recipe("finetune.py", "--backbone=tiny", f"--train={TREC}", *flags_,
                            f"--output_dir={tmp_path / 'run'}")
        assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_help_lists_the_flags_a_user_needs_first_grouped_and_exits_zero():
    result = run_recipe("finetune.py", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    # The recipe's own flags, then data before the model and the optimizer.
    flags = text[text.index("This recipe:"):]
    positions = [flags.index(marker) for marker in (
        "--output_dir", "--train:", "--layers", "--learning_rate", "--strategy", "--helpfull")]
    assert positions == sorted(positions)
    assert "test_random_seed" not in text and "xla_" not in text  # absl-testing, TF internals
    assert len(text.splitlines()) < 150
    # Help texts come from the code's own defaults.
    from kerasbert.training.trainer import DEFAULT_STEPS_PER_LOOP
    steps = " ".join(text.split("--steps_per_loop")[1].split("--")[0].split())
    assert (f"Default: {DEFAULT_STEPS_PER_LOOP['CPU']} on a CPU, "
            f"{DEFAULT_STEPS_PER_LOOP['GPU']} on a GPU") in steps, steps

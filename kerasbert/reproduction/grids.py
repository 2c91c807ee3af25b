"""The paper's experiment grids (Tables 2–7), run cell by cell, resumably.

Each cell is an ordinary recipe run in its own directory: `fine_tune` in
`output_dir/<cell>` (Table 7: `output_dir/<cell>/<task>`), or
`multitask_fine_tune` in `output_dir/<cell>` for the multi-task cells. A
cell that starts from a further-pre-trained encoder finds it in
`output_dir/pretraining/<corpus>/backbone`, built once by
`further_pretrain` and shared by every cell that needs it. Every cell is a run
directory (`kerasbert.training.run_directory`): a grid stopped and started
again returns finished cells at once, resumes the interrupted one at its
last step checkpoint, and refuses a cell whose directory holds other
settings (a finished cell is reused only when its fingerprint matches).
`kerasbert.reproduction.reports` lays the results out like the paper.
"""

import dataclasses
import json
import os

from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.multitask import multitask_fine_tune
from kerasbert.training.pretraining import further_pretrain
from kerasbert.training.run_directory import atomic_path

TABLES = (2, 3, 4, 5, 6, 7)
DECAYS = (1.0, 0.95, 0.9, 0.85)
# Further pre-training corpora of Tables 5–7: the target task's own training
# text, text of its domain, and text of every domain.
CORPORA = ("itpt", "idpt", "cdpt")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid.

    Attributes:
        name: str. The cell's directory and row name.
        settings: dict. `fine_tune` arguments the cell sets.
        pretraining: str or None. The corpus (one of `CORPORA`) the backbone
            is further pre-trained on before fine-tuning.
        multitask: bool. Fine-tune jointly on every task, then per task.
    """

    name: str
    settings: dict = dataclasses.field(default_factory=dict)
    pretraining: str = None
    multitask: bool = False


def table_cells(table, num_layers, learning_rates=(2.5e-5, 2e-5), corpora=CORPORA,
                feature_learning_rate=1e-3):
    """The cells of the paper's Table `table` for an encoder of `num_layers`.

    Table 3's rows use our layer numbering: `layer_i` is the output of
    transformer layer i (the paper's "Layer-(i−1)"), and `embeddings`, our
    layer 0, is an extra row the paper does not have. Tables 5–7 include a
    further-pre-trained row only for the corpora in `corpora`.

    Args:
        table: int. One of `TABLES`.
        num_layers: int. The encoder's transformer layers.
        learning_rates: Table 4's learning rates.
        corpora: the further pre-training corpora available (Tables 5–7).
        feature_learning_rate: float. The BERT-Feat cell's learning rate
            (Table 6): its BiLSTM trains from scratch on frozen features.

    Returns:
        A list of `Cell` in table order.

    Example:
    ```python
    from kerasbert.reproduction import grids
    [c.name for c in grids.table_cells(6, num_layers=6, corpora=("itpt",))]
    # ['feat', 'fit', 'itpt_fit']
    ```
    """
    unknown = set(corpora) - set(CORPORA)
    if unknown:
        raise ValueError(f"`corpora` must be among {CORPORA}. Received: {sorted(unknown)}")
    pretrained = [Cell(f"{c}_fit", pretraining=c) for c in CORPORA if c in corpora]
    if table == 2:
        return [
            Cell("head", {"truncation": "head"}),
            Cell("tail", {"truncation": "tail"}),
            Cell("head_tail", {"truncation": "head_tail"}),
            *[Cell(f"segments_{p}", {"truncation": "segments", "segment_pooling": p})
              for p in ("mean", "max", "attention")],
        ]
    if table == 3:
        cells = [Cell("embeddings", {"layers": 0})]
        cells += [Cell(f"layer_{i}", {"layers": i}) for i in range(1, num_layers + 1)]
        cells += [Cell(f"{s}_{c}", {"layers": s, "combine": c})
                  for s in ("first4", "last4") for c in ("concat", "mean", "max")]
        return cells + [Cell("all_concat", {"layers": "all", "combine": "concat"})]
    if table == 4:
        return [Cell(f"lr{lr:g}_xi{xi:g}", {"learning_rate": lr, "layer_decay": xi})
                for lr in learning_rates for xi in DECAYS]
    if table == 5:
        return [Cell("fit"), *pretrained]
    if table == 6:
        feat = Cell("feat", {"classifier": "feature_bilstm", "learning_rate": feature_learning_rate})
        return [feat, Cell("fit"), *pretrained]
    if table == 7:
        cells = [Cell("fit"), Cell("mfit_fit", multitask=True)]
        if "cdpt" in corpora:
            cells += [Cell("cdpt_fit", pretraining="cdpt"),
                      Cell("cdpt_mfit_fit", pretraining="cdpt", multitask=True)]
        return cells
    raise ValueError(f"`table` must be one of {TABLES}. Received: {table!r}")


def write_corpus(texts, path):
    """Write texts as a JSON Lines corpus (`{"text": ...}` per line).

    An existing file with the same content is left untouched, so that the
    fingerprint of a pre-training run on it (path, size, modification time)
    still matches when a grid is started again.
    """
    content = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            if file.read() == content:
                return path
    with atomic_path(path) as partial:
        with open(partial, "w", encoding="utf-8") as file:
            file.write(content)
    return path


def run_grid(table, backbone, tasks, output_dir, *, corpora=None, pretraining=None,
             learning_rates=(2.5e-5, 2e-5), feature_learning_rate=1e-3, num_layers,
             finetune_epochs=1, finetune_learning_rate=None, export=False, verbose=0,
             **budget):
    """Run every cell of Table `table` that has no results yet.

    Args:
        table: int. One of `TABLES`.
        backbone: str. Backbone spec.
        tasks: dict. Task name → `kerasbert.training.multitask.TaskData`. Tables
            2–6 use the first task only; Table 7 runs every task.
        output_dir: str. One sub-directory per cell.
        corpora: dict or None. Corpus name (one of `CORPORA`) → a list of
            `(corpus spec, weight)` sources for `further_pretrain`; only
            these pre-trained rows of Tables 5–7 are run.
        pretraining: dict or None. `further_pretrain` arguments (steps,
            batch_size, sequence_length, learning_rate, …).
        learning_rates: Table 4's learning rates.
        feature_learning_rate: float. Table 6's BERT-Feat learning rate.
        num_layers: int. The backbone's transformer layers (Table 3's rows).
        finetune_epochs, finetune_learning_rate: Table 7's per-task phase
            after joint fine-tuning (see `multitask_fine_tune`).
        export: bool. Also write each cell's raw-text SavedModel. Off by
            default: a grid's results are its figures, and every cell keeps
            its classifier in `preset/` (`kerasbert.load_classifier`).
        verbose: int. Keras verbosity.
        **budget: further `fine_tune` arguments shared by every cell
            (epochs, batch_size, sequence_length, learning_rate, seed, …).
            Each task's `sequence_length`, `truncation` and `head_length`
            come from its `Task`.

    Returns:
        A list of `(cell, {task name: metrics})` in table order; a
        multi-task cell's metrics per task are its per-task fine-tuning
        results, with the joint phase's under `"joint"`.
    """
    corpora = corpora or {}
    cells = table_cells(table, num_layers, learning_rates, tuple(corpora), feature_learning_rate)
    names = list(tasks) if table == 7 else list(tasks)[:1]
    results = []
    for cell in cells:
        cell_backbone = backbone
        if cell.pretraining:
            cell_backbone = _pretrained_backbone(
                backbone, cell.pretraining, corpora[cell.pretraining], output_dir,
                pretraining or {}, verbose,
            )
        cell_dir = os.path.join(output_dir, cell.name)
        if cell.multitask:
            results.append((cell, _run_multitask_cell(
                cell_backbone, {n: tasks[n] for n in names}, cell_dir, finetune_epochs,
                finetune_learning_rate, export, verbose, budget,
            )))
            continue
        per_task = {}
        for name in names:
            task_dir = os.path.join(cell_dir, name) if table == 7 else cell_dir
            per_task[name] = fine_tune(
                cell_backbone, tasks[name].train, task_dir, validation=tasks[name].validation,
                test=tasks[name].test, export=export, verbose=verbose,
                **{**budget, **_task_settings(tasks[name]), **cell.settings},
            )
        results.append((cell, per_task))
    return results


def _task_settings(task):
    return {"sequence_length": task.sequence_length, "truncation": task.truncation,
            "head_length": task.head_length}


def _pretrained_backbone(backbone, corpus, sources, output_dir, pretraining, verbose):
    directory = os.path.join(output_dir, "pretraining", corpus)
    further_pretrain(backbone, sources, directory, verbose=verbose, **pretraining)
    return os.path.join(directory, "backbone")


def _run_multitask_cell(backbone, tasks, cell_dir, finetune_epochs, finetune_learning_rate,
                        export, verbose, budget):
    shared = ("learning_rate", "batch_size", "epochs", "warmup_proportion", "layer_decay",
              "layer_decay_convention", "layers", "combine", "dropout", "seed")
    metrics = multitask_fine_tune(
        backbone, tasks, cell_dir, then_finetune=True, finetune_epochs=finetune_epochs,
        finetune_learning_rate=finetune_learning_rate, export=export, verbose=verbose,
        **{k: v for k, v in budget.items() if k in shared},
    )
    return {name: {**metrics["finetuned"][name], "joint": metrics["joint"][name]}
            for name in tasks}


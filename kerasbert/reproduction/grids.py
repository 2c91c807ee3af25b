"""The paper's experiment grids (Tables 2–7, Figures 2–4), run cell by cell, resumably.

Each cell is an ordinary recipe run in its own directory: `fine_tune` in
`output_dir/<cell>` (Table 7: `output_dir/<cell>/<task>`), or
`multitask_fine_tune` in `output_dir/<cell>` for the multi-task cells. A
cell that starts from a further-pre-trained encoder finds it under
`pretraining_dir/<corpus>` (Figure 3: `<corpus>_snapshots`), built once by
`further_pretrain` and shared by every cell, and every seed, that needs it.
Every cell is a run directory (`kerasbert.training.run_directory`): a grid
stopped and started again returns finished cells at once, resumes the
interrupted one at its last step checkpoint, and refuses a cell whose
directory holds other settings (a finished cell is reused only when its
fingerprint matches). A grid over several seeds runs `run_grid` once per
seed, each in its own `output_dir` (`recipes/reproduce.py`: `seed_<S>/`).
`kerasbert.reproduction.reports` lays the results out like the paper.
"""

import dataclasses
import json
import math
import os

import numpy as np

from kerasbert.training.configs import FineTuneConfig
from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.multitask import multitask_fine_tune
from kerasbert.training.pretraining import further_pretrain
from kerasbert.training.pretraining import snapshot_path
from kerasbert.utils.files import atomic_path

# fine_tune's own defaults, which a cell's epoch count starts from.
FINE_TUNE_DEFAULTS = FineTuneConfig()
TABLES = (2, 3, 4, 5, 6, 7)
FIGURES = (2, 3, 4)
GRIDS = tuple(f"table{t}" for t in TABLES) + tuple(f"figure{f}" for f in FIGURES)
DECAYS = (1.0, 0.95, 0.9, 0.85)
# Further pre-training corpora of Tables 5–7: the target task's own training
# text, text of its domain, and text of every domain.
CORPORA = ("itpt", "idpt", "cdpt")
# Figure 2's learning rates (catastrophic forgetting).
FIGURE2_RATES = (2e-5, 5e-5, 1e-4, 4e-4)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid.

    Attributes:
        name: str. The cell's directory and row name.
        settings: dict. `fine_tune` arguments the cell sets.
        pretraining: str or None. The corpus (one of `CORPORA`) the backbone
            is further pre-trained on before fine-tuning.
        multitask: bool. Fine-tune jointly on every task, then per task.
        baseline: str or None. The cell this row is compared with in the
            report (paired over seeds, or over test examples for one seed).
        pretraining_step: int or None. Figure 3: fine-tune the encoder as it
            was after this many further pre-training steps.
        train_subset: tuple or None. Figure 4: `("fraction", f)` trains on
            that fraction of the training set, `("per_class", k)` on k
            examples of every class (nested: a smaller subset is part of
            every larger one of the same seed), without a validation set:
            the cell keeps its last epoch.
    """

    name: str
    settings: dict = dataclasses.field(default_factory=dict)
    pretraining: str = None
    multitask: bool = False
    baseline: str = None
    pretraining_step: int = None
    train_subset: tuple = None


def table_cells(table, num_layers, learning_rates=(2.5e-5, 2e-5), corpora=CORPORA,
                feature_learning_rate=1e-3):
    """The cells of the paper's Table `table` for an encoder of `num_layers`.

    Table 3's rows use our layer numbering: `layer_i` is the output of
    transformer layer i (the paper's "Layer-(i−1)"), and `embeddings`, our
    layer 0, is an extra row the paper does not have. Tables 5–7 include a
    further-pre-trained row only for the corpora in `corpora`.

    Each row names the baseline it is compared with: the head-only row
    (Table 2), the last layer (Table 3), ξ = 1 at the same learning rate and
    the first rate's ξ = 1 row for the other rates' (Table 4), BERT-Feat
    (Table 6, as its Δ column), BERT-FiT (Tables 5 and 7).

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
    pretrained = [Cell(f"{c}_fit", pretraining=c, baseline="fit") for c in CORPORA if c in corpora]
    if table == 2:
        return [
            Cell("head", {"truncation": "head"}),
            Cell("tail", {"truncation": "tail"}, baseline="head"),
            Cell("head_tail", {"truncation": "head_tail"}, baseline="head"),
            *[Cell(f"segments_{p}", {"truncation": "segments", "segment_pooling": p},
                   baseline="head")
              for p in ("mean", "max", "attention")],
        ]
    if table == 3:
        last = f"layer_{num_layers}"
        cells = [Cell("embeddings", {"layers": 0}, baseline=last)]
        cells += [Cell(f"layer_{i}", {"layers": i}, baseline=None if i == num_layers else last)
                  for i in range(1, num_layers + 1)]
        cells += [Cell(f"{s}_{c}", {"layers": s, "combine": c}, baseline=last)
                  for s in ("first4", "last4") for c in ("concat", "mean", "max")]
        return cells + [Cell("all_concat", {"layers": "all", "combine": "concat"}, baseline=last)]
    if table == 4:
        first = f"lr{learning_rates[0]:g}_xi{DECAYS[0]:g}"
        return [Cell(f"lr{lr:g}_xi{xi:g}", {"learning_rate": lr, "layer_decay": xi},
                     baseline=(f"lr{lr:g}_xi{DECAYS[0]:g}" if xi != DECAYS[0]
                               else None if i == 0 else first))
                for i, lr in enumerate(learning_rates) for xi in DECAYS]
    if table == 5:
        return [Cell("fit"), *pretrained]
    if table == 6:
        feat = Cell("feat", {"classifier": "feature_bilstm", "learning_rate": feature_learning_rate})
        return [feat, Cell("fit", baseline="feat"),
                *[dataclasses.replace(c, baseline="feat") for c in pretrained]]
    if table == 7:
        cells = [Cell("fit"), Cell("mfit_fit", multitask=True, baseline="fit")]
        if "cdpt" in corpora:
            cells += [Cell("cdpt_fit", pretraining="cdpt", baseline="fit"),
                      Cell("cdpt_mfit_fit", pretraining="cdpt", multitask=True, baseline="fit")]
        return cells
    raise ValueError(f"`table` must be one of {TABLES}. Received: {table!r}")


def figure_cells(figure, learning_rates=FIGURE2_RATES, pretraining_steps=100_000,
                 checkpoint_every=10_000, fractions=(), examples_per_class=()):
    """The cells of the paper's Figure `figure`.

    - Figure 2 (catastrophic forgetting): a cell `lr<rate>` per learning
      rate, compared with the first rate.
    - Figure 3: `step_0` fine-tunes the encoder as given; `step_<S>` the
      in-task further pre-trained encoder after S steps, for every multiple
      S of `checkpoint_every` up to `pretraining_steps`; compared with
      `step_0`.
    - Figure 4 (few-shot): per training size, BERT-FiT (`fit_<size>`) and
      BERT-ITPT-FiT (`itpt_fit_<size>`, compared with the same size's
      BERT-FiT); a size is a fraction of the training set (`frac0.01`) or
      a number of examples per class (`pc5`).

    Args:
        figure: int. One of `FIGURES`.
        learning_rates: Figure 2's learning rates.
        pretraining_steps, checkpoint_every: int. Figure 3's further
            pre-training length and snapshot interval.
        fractions: Figure 4's training fractions, each in (0, 1].
        examples_per_class: Figure 4's examples per class, each positive.

    Returns:
        A list of `Cell` in the figure's order.

    Example:
    ```python
    from kerasbert.reproduction import grids
    [c.name for c in grids.figure_cells(3, pretraining_steps=200, checkpoint_every=100)]
    # ['step_0', 'step_100', 'step_200']
    ```
    """
    if figure == 2:
        if not learning_rates:
            raise ValueError("Figure 2 needs at least one learning rate.")
        first = f"lr{learning_rates[0]:g}"
        return [Cell(f"lr{lr:g}", {"learning_rate": lr}, baseline=None if i == 0 else first)
                for i, lr in enumerate(learning_rates)]
    if figure == 3:
        for name, value in (("pretraining_steps", pretraining_steps),
                            ("checkpoint_every", checkpoint_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {value!r}")
        if pretraining_steps % checkpoint_every:
            raise ValueError(f"`pretraining_steps` ({pretraining_steps}) must be a multiple of "
                             f"`checkpoint_every` ({checkpoint_every}).")
        steps = range(checkpoint_every, pretraining_steps + 1, checkpoint_every)
        return [Cell("step_0", pretraining_step=0)] + [
            Cell(f"step_{s}", pretraining="itpt", pretraining_step=s, baseline="step_0")
            for s in steps]
    if figure == 4:
        sizes = []
        for fraction in fractions:
            if isinstance(fraction, bool) or not 0 < fraction <= 1:
                raise ValueError(f"Figure 4's fractions must be in (0, 1]. Received: {fraction!r}")
            sizes.append((f"frac{fraction:g}", ("fraction", fraction)))
        for count in examples_per_class:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(
                    f"Figure 4's examples per class must be positive integers. Received: {count!r}")
            sizes.append((f"pc{count}", ("per_class", count)))
        if not sizes:
            raise ValueError("Figure 4 needs training fractions or examples per class.")
        if len({label for label, _ in sizes}) != len(sizes):
            raise ValueError(f"Figure 4's training sizes repeat: {[l for l, _ in sizes]}")
        return [cell for label, subset in sizes for cell in (
            Cell(f"fit_{label}", train_subset=subset),
            Cell(f"itpt_fit_{label}", pretraining="itpt", train_subset=subset,
                 baseline=f"fit_{label}"))]
    raise ValueError(f"`figure` must be one of {FIGURES}. Received: {figure!r}")


def grid_cells(grid, num_layers, **options):
    """The cells of `grid` (one of `GRIDS`, e.g. `"table4"` or `"figure2"`).

    `options` go to `table_cells` or `figure_cells`, whichever the grid is;
    the ones the grid does not read are ignored.

    Example:
    ```python
    from kerasbert.reproduction import grids
    len(grids.grid_cells("table4", num_layers=6))  # 8
    ```
    """
    kind, number = parse_grid(grid)
    names = (("learning_rates", "corpora", "feature_learning_rate") if kind == "table" else
             ("learning_rates", "pretraining_steps", "checkpoint_every", "fractions",
              "examples_per_class"))
    chosen = {k: v for k, v in options.items() if k in names}
    if kind == "table":
        return table_cells(number, num_layers, **chosen)
    return figure_cells(number, **chosen)


def parse_grid(grid):
    """`("table", 4)` of `"table4"`, `("figure", 2)` of `"figure2"`; other names raise."""
    if grid not in GRIDS:
        raise ValueError(f"`grid` must be one of {GRIDS}. Received: {grid!r}")
    kind = "table" if grid.startswith("table") else "figure"
    return kind, int(grid[len(kind):])


def training_subset(train, subset, seed):
    """The examples of `train` a Figure 4 cell trains on (see `Cell.train_subset`).

    Subsets of one seed are nested: the examples are taken in the order of a
    seeded permutation (per class for `"per_class"`), so a smaller size is
    the start of every larger one, and two sizes differ only by examples
    added.

    Example:
    ```python
    import numpy as np
    from kerasbert.data.datasets import LabeledTexts
    from kerasbert.reproduction.grids import training_subset
    data = LabeledTexts(["a", "b", "c", "d"], np.array([0, 1, 0, 1]), ["x", "y"], "toy")
    len(training_subset(data, ("per_class", 1), seed=0))  # 2
    ```
    """
    kind, size = subset
    order = np.random.default_rng(seed).permutation(len(train))
    if kind == "fraction":
        count = int(round(size * len(train)))
        if count < 1:
            raise ValueError(f"A training fraction of {size:g} of the {len(train)} examples of "
                             f"{train.source} is no example at all.")
        chosen = order[:count]
        source = f"{train.source} ({size:g} of it)"
    elif kind == "per_class":
        chosen = []
        for label, name in enumerate(train.label_names):
            members = order[train.labels[order] == label]
            if len(members) < size:
                raise ValueError(f"Class {name!r} of {train.source} has {len(members)} examples; "
                                 f"{size} per class were asked for.")
            chosen.extend(members[:size])
        source = f"{train.source} ({size} per class)"
    else:
        raise ValueError(f"A training subset is ('fraction', f) or ('per_class', k). "
                         f"Received: {subset!r}")
    return train.subset(np.sort(np.asarray(chosen)), source)


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


def run_grid(grid, backbone, tasks, output_dir, *, corpora=None, pretraining=None,
             pretraining_dir=None, learning_rates=None, feature_learning_rate=1e-3,
             num_layers, fractions=(), examples_per_class=(), min_train_steps=0,
             finetune_epochs=1, finetune_learning_rate=None, export=False, verbose=0,
             **budget):
    """Run every cell of `grid` that has no results yet, for one seed.

    Args:
        grid: str. One of `GRIDS`: `"table2"` … `"table7"`, `"figure2"` …
            `"figure4"`.
        backbone: str. Backbone spec.
        tasks: dict. Task name → `kerasbert.training.multitask.TaskData`.
            Table 7 runs every task; the other grids the first only.
        output_dir: str. One sub-directory per cell.
        corpora: dict or None. Corpus name (one of `CORPORA`) → a list of
            `(corpus spec, weight)` sources for `further_pretrain`; only
            these pre-trained rows of Tables 5–7 are run. Figures 3 and 4
            read `"itpt"`.
        pretraining: dict or None. `further_pretrain` arguments (steps,
            batch_size, sequence_length, learning_rate, checkpoint_every,
            seed, …), the same for every seed of a grid.
        pretraining_dir: str or None. Where the further pre-training runs
            live; default `output_dir/pretraining`. The seeds of one grid
            share it, so each corpus is pre-trained once.
        learning_rates: Table 4's (default 2.5e-5, 2e-5) or Figure 2's
            (default `FIGURE2_RATES`) learning rates.
        feature_learning_rate: float. Table 6's BERT-Feat learning rate.
        num_layers: int. The backbone's transformer layers (Table 3's rows).
        fractions, examples_per_class: Figure 4's training sizes.
        min_train_steps: int. Figure 4: a cell trains for more epochs when
            `epochs` passes over its subset would take fewer steps than
            this (a 50-example subset would otherwise take a handful).
            Figure 4's cells train without validation (their task's carve
            is not used) and keep their last epoch.
        finetune_epochs, finetune_learning_rate: Table 7's per-task phase
            after joint fine-tuning (see `multitask_fine_tune`).
        export: bool. Also write each cell's raw-text SavedModel. Off by
            default: a grid's results are its figures, and every cell keeps
            its classifier in `preset/` (`kerasbert.load_classifier`).
        verbose: int. Keras verbosity.
        **budget: further `fine_tune` arguments shared by every cell
            (epochs, batch_size, learning_rate, seed, …). Each task's
            `sequence_length`, `truncation` and `head_length` come from its
            `TaskData`.

    Returns:
        A list of `(cell, {task name: metrics})` in the grid's order; a
        multi-task cell's metrics per task are its per-task fine-tuning
        results, with the joint phase's under `"joint"`; a Figure 4 cell's
        also hold `train_subset`: its examples, and how many classes of
        how many they cover.
    """
    if isinstance(min_train_steps, bool) or not isinstance(min_train_steps, int) or (
            min_train_steps < 0):
        raise ValueError(f"`min_train_steps` must be a non-negative integer. Received: "
                         f"{min_train_steps!r}")
    corpora = corpora or {}
    pretraining = dict(pretraining or {})
    if grid == "figure3":  # its cells are the snapshots of exactly this run
        pretraining.setdefault("steps", 100_000)
        pretraining.setdefault("checkpoint_every", 10_000)
    pretraining_dir = pretraining_dir or os.path.join(output_dir, "pretraining")
    if learning_rates is None:
        learning_rates = FIGURE2_RATES if grid == "figure2" else (2.5e-5, 2e-5)
    cells = grid_cells(
        grid, num_layers, learning_rates=tuple(learning_rates), corpora=tuple(corpora),
        feature_learning_rate=feature_learning_rate,
        pretraining_steps=pretraining.get("steps", 100_000),
        checkpoint_every=pretraining.get("checkpoint_every", 10_000),
        fractions=tuple(fractions), examples_per_class=tuple(examples_per_class),
    )
    missing = sorted({c.pretraining for c in cells if c.pretraining} - set(corpora))
    if missing:
        raise ValueError(f"{grid} needs the further pre-training corpora {missing}; `corpora` "
                         f"holds {sorted(corpora)}.")
    names = list(tasks) if grid == "table7" else list(tasks)[:1]
    results = []
    for cell in cells:
        cell_backbone = backbone
        if cell.pretraining:
            cell_backbone = _pretrained_backbone(
                backbone, cell.pretraining, corpora[cell.pretraining], pretraining_dir,
                pretraining, cell.pretraining_step, verbose,
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
            task = tasks[name]
            task_dir = os.path.join(cell_dir, name) if grid == "table7" else cell_dir
            settings = {**budget, **_task_settings(task), **cell.settings}
            train, validation, subset = task.train, task.validation, None
            if cell.train_subset:
                # A few-shot learner has no labelled validation set to pick
                # its best epoch on: it keeps its last.
                train = training_subset(train, cell.train_subset, settings.get("seed", 0))
                validation = None
                settings["epochs"] = _epochs_for(
                    len(train), settings.get("epochs", FINE_TUNE_DEFAULTS.epochs),
                    settings.get("batch_size", FINE_TUNE_DEFAULTS.batch_size),
                    min_train_steps)
                subset = {"examples": len(train), "classes": len(set(train.labels.tolist())),
                          "of_classes": len(train.label_names)}
            metrics = fine_tune(
                cell_backbone, train, task_dir, validation=validation, test=task.test,
                export=export, verbose=verbose, **settings,
            )
            per_task[name] = metrics if subset is None else {**metrics, "train_subset": subset}
        results.append((cell, per_task))
    return results


def check_training_subsets(cells, train, seed):
    """Raise now, naming the size, if a cell's training subset cannot be drawn
    from `train` for `seed` (before a grid spends hours on other cells)."""
    for cell in cells:
        if cell.train_subset:
            training_subset(train, cell.train_subset, seed)


def _epochs_for(examples, epochs, batch_size, min_train_steps):
    """`epochs`, or more when `epochs` passes would be under `min_train_steps` steps."""
    steps_per_epoch = math.ceil(examples / batch_size)
    return max(epochs, math.ceil(min_train_steps / steps_per_epoch))


def _task_settings(task):
    # What the task sets for itself; the run's defaults hold for the rest.
    return {name: getattr(task, name) for name in ("sequence_length", "truncation",
                                                   "head_length")
            if getattr(task, name) is not None}


def _pretrained_backbone(backbone, corpus, sources, pretraining_dir, pretraining, step, verbose):
    if step is None:
        directory = os.path.join(pretraining_dir, corpus)
        further_pretrain(backbone, sources, directory, verbose=verbose, **pretraining)
        return os.path.join(directory, "backbone")
    # Figure 3: one run keeps the encoder of every checkpoint. Its own
    # directory: a run without snapshots cannot grow them afterwards.
    directory = os.path.join(pretraining_dir, f"{corpus}_snapshots")
    further_pretrain(backbone, sources, directory, backbone_snapshots=True, verbose=verbose,
                     **pretraining)
    return snapshot_path(directory, step)


def _run_multitask_cell(backbone, tasks, cell_dir, finetune_epochs, finetune_learning_rate,
                        export, verbose, budget):
    shared = ("learning_rate", "batch_size", "epochs", "warmup_proportion", "layer_decay",
              "layer_decay_convention", "layers", "combine", "dropout", "seed", "overwrite")
    metrics = multitask_fine_tune(
        backbone, tasks, cell_dir, then_finetune=True, finetune_epochs=finetune_epochs,
        finetune_learning_rate=finetune_learning_rate, export=export, verbose=verbose,
        **{k: v for k, v in budget.items() if k in shared},
    )
    return {name: {**metrics["finetuned"][name], "joint": metrics["joint"][name]}
            for name in tasks}


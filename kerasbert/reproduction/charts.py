"""Charts of the paper's grids: PNG files beside `report.md`."""

import os

from kerasbert.reproduction import statistics
from kerasbert.reproduction.results import ROW_NAMES
from kerasbert.reproduction.results import seed_errors
from kerasbert.utils.files import atomic_path


def write_charts(grid, results, task, output_dir):
    """Draw `grid`'s charts for `task` as PNG files in `output_dir`.

    Error charts draw the mean over seeds with the sample standard
    deviation as error bars (none for one seed): error per layer (Table 3),
    error against ξ per learning rate (Table 4), error per cell (Tables 2,
    5–7), training loss and validation error per epoch per rate (Figure 2,
    means over seeds), error against further pre-training steps (Figure 3),
    error against training size on a log axis for BERT-FiT and
    BERT-ITPT-FiT (Figure 4); and every grid's training loss per epoch.

    Args:
        grid: str. One of `kerasbert.reproduction.grids.GRIDS`.
        results: `{seed: run_grid's list}`.
        task: str. The task whose errors are drawn.
        output_dir: str. Where the PNG files go (each written atomically).

    Returns:
        The paths of the charts written.

    Example:
    ```python
    import tempfile
    from kerasbert.reproduction import charts, grids
    cells = grids.figure_cells(3, pretraining_steps=100, checkpoint_every=100)
    run = lambda error: {"t": {"test": {"error": error}, "epochs": [{"loss": 0.4}]}}
    results = {s: [(cells[0], run(0.05)), (cells[1], run(0.04 + s / 100))] for s in (0, 1)}
    [p.split("/")[-1] for p in charts.write_charts("figure3", results, "t", tempfile.mkdtemp())]
    # ['error_vs_pretraining_steps.png', 'training_curves.png']
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [cell for cell, _ in next(iter(results.values()))]
    errors, split = seed_errors(results, task)
    spread = {n: statistics.mean_and_std(v) for n, v in errors.items()}
    several = len(results) > 1
    label = f"{task} {split} error %" + (" (mean ± std over seeds)" if several else "")

    def draw(axes, names, x, **style):
        axes.errorbar(x, [spread[n][0] for n in names],
                      yerr=[spread[n][1] for n in names] if several else None,
                      marker="o", capsize=3, **style)

    charts = []
    if grid == "table3":
        layer_cells = [c.name for c in cells if c.name == "embeddings" or c.name.startswith("layer_")]
        figure, axes = plt.subplots(figsize=(6, 3.5))
        draw(axes, layer_cells, range(len(layer_cells)))
        axes.set_xlabel("layer (0 = embeddings)")
        axes.set_ylabel(label)
        charts.append(_save(figure, output_dir, "error_per_layer.png"))
    if grid == "table4":
        figure, axes = plt.subplots(figsize=(6, 3.5))
        rates = sorted({c.settings["learning_rate"] for c in cells}, reverse=True)
        for rate in rates:
            chosen = [c for c in cells if c.settings["learning_rate"] == rate]
            draw(axes, [c.name for c in chosen], [c.settings["layer_decay"] for c in chosen],
                 label=f"lr {rate:g}")
        axes.set_xlabel("ξ (layer-wise decay)")
        axes.set_ylabel(label)
        axes.invert_xaxis()
        axes.legend()
        charts.append(_save(figure, output_dir, "error_vs_decay.png"))
    if grid in ("table2", "table5", "table6", "table7"):
        figure, axes = plt.subplots(figsize=(6, 3.5))
        names = [c.name for c in cells]
        axes.bar(range(len(names)), [spread[n][0] for n in names],
                 yerr=[spread[n][1] for n in names] if several else None, capsize=3)
        axes.set_xticks(range(len(names)), [ROW_NAMES.get(n, n) for n in names],
                        rotation=20, fontsize=7)
        axes.set_ylabel(label)
        charts.append(_save(figure, output_dir, "error_per_cell.png"))
    if grid == "figure2":
        charts.append(_learning_rate_chart(plt, results, cells, task, output_dir))
    if grid == "figure3":
        figure, axes = plt.subplots(figsize=(6, 3.5))
        draw(axes, [c.name for c in cells], [c.pretraining_step for c in cells])
        axes.set_xlabel("further pre-training steps (in-task)")
        axes.set_ylabel(label)
        charts.append(_save(figure, output_dir, "error_vs_pretraining_steps.png"))
    if grid == "figure4":
        for kind, axis_label, name in (("fraction", "fraction of the training set (log)",
                                        "error_vs_training_fraction.png"),
                                       ("per_class", "training examples per class (log)",
                                        "error_vs_examples_per_class.png")):
            sized = [c for c in cells if c.train_subset and c.train_subset[0] == kind]
            if not sized:
                continue
            figure, axes = plt.subplots(figsize=(6, 3.5))
            for method, title in (("fit", "BERT-FiT"), ("itpt", "BERT-ITPT-FiT")):
                chosen = [c for c in sized if (c.pretraining == "itpt") == (method == "itpt")]
                draw(axes, [c.name for c in chosen], [c.train_subset[1] for c in chosen],
                     label=title)
            axes.set_xscale("log")
            axes.set_xlabel(axis_label)
            axes.set_ylabel(label)
            axes.legend()
            charts.append(_save(figure, output_dir, name))
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for cell in cells:
        losses = mean_curve(results, cell, task, "loss")
        if losses:
            axes.plot(range(1, len(losses) + 1), losses, label=cell.name)
    axes.set_xlabel("epoch")
    axes.set_ylabel("training loss" + (" (mean over seeds)" if several else ""))
    if len(cells) <= 10:
        axes.legend(fontsize=7)
    charts.append(_save(figure, output_dir, "training_curves.png"))
    return charts


def mean_curve(results, cell, task, key):
    """The per-epoch mean over seeds of `key` (the epochs every seed logged).

    Example:
    ```python
    from kerasbert.reproduction import charts, grids
    cell = grids.Cell("fit")
    results = {0: [(cell, {"t": {"epochs": [{"loss": 1.0}, {"loss": 0.5}]}})],
               1: [(cell, {"t": {"epochs": [{"loss": 3.0}]}})]}
    charts.mean_curve(results, cell, "t", "loss")  # [2.0]
    ```
    """
    curves = []
    for per_seed in results.values():
        epochs = {c.name: m for c, m in per_seed}[cell.name][task].get("epochs", [])
        curves.append([row[key] for row in epochs if key in row])
    length = min(len(c) for c in curves)
    return [sum(c[i] for c in curves) / len(curves) for i in range(length)]


def _learning_rate_chart(plt, results, cells, task, output_dir):
    """Figure 2: training loss and validation error per epoch, a line per rate."""
    figure, (losses, errors) = plt.subplots(1, 2, figsize=(10, 3.5))
    for cell in cells:
        label = f"lr {cell.settings['learning_rate']:g}"
        loss = mean_curve(results, cell, task, "loss")
        losses.plot(range(1, len(loss) + 1), loss, marker="o", label=label)
        error = [100 * e for e in mean_curve(results, cell, task, "val_error")]
        errors.plot(range(1, len(error) + 1), error, marker="o", label=label)
    suffix = " (mean over seeds)" if len(results) > 1 else ""
    losses.set_xlabel("epoch")
    losses.set_ylabel("training loss" + suffix)
    errors.set_xlabel("epoch")
    errors.set_ylabel("validation error %" + suffix)
    losses.legend(fontsize=7)
    return _save(figure, output_dir, "learning_rate_curves.png")


def _save(figure, output_dir, name):
    import matplotlib.pyplot as plt

    path = os.path.join(output_dir, name)
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=110)
    plt.close(figure)
    return path

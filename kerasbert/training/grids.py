"""The paper's fine-tuning experiment grids (Tables 2–4) and their reports.

Each cell is an ordinary `fine_tune` run in `output_dir/<cell>`; a grid that
is stopped and started again skips the cells whose `metrics.json` exists.
`write_report` lays the results out like the paper's table, our error beside
the paper's figure where the paper has one, with the exact settings of every
cell and PNG charts.
"""

import dataclasses
import json
import os

from kerasbert.training.fine_tuning import fine_tune

TABLES = (2, 3, 4)
# The paper's IMDb test errors (%), BERT-base (../shared/PAPER.md).
PAPER_ERRORS = {
    2: {"head": 5.63, "tail": 5.44, "head_tail": 5.42, "segments_mean": 5.89,
        "segments_max": 5.71, "segments_attention": 5.49},
    3: {**{f"layer_{i}": e for i, e in enumerate(
        [11.07, 9.81, 9.29, 8.66, 7.83, 6.83, 6.83, 6.41, 6.04, 5.70, 5.46, 5.42], start=1)},
        "first4_concat": 8.69, "first4_mean": 9.09, "first4_max": 8.76, "last4_concat": 5.43,
        "last4_mean": 5.44, "last4_max": 5.42, "all_concat": 5.44},
    4: {"lr2.5e-05_xi1.0": 5.52, "lr2.5e-05_xi0.95": 5.46, "lr2.5e-05_xi0.9": 5.44,
        "lr2.5e-05_xi0.85": 5.58, "lr2e-05_xi1.0": 5.42, "lr2e-05_xi0.95": 5.40,
        "lr2e-05_xi0.9": 5.52, "lr2e-05_xi0.85": 5.65},
}
DECAYS = (1.0, 0.95, 0.9, 0.85)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid: its name and the `fine_tune` arguments it sets."""

    name: str
    settings: dict


def table_cells(table, num_layers, learning_rates=(2.5e-5, 2e-5)):
    """The cells of the paper's Table `table` for an encoder of `num_layers`.

    Table 3's rows use our layer numbering: `layer_i` is the output of
    transformer layer i (the paper's "Layer-(i−1)"), and `embeddings`, our
    layer 0, is an extra row the paper does not have.
    """
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
    raise ValueError(f"`table` must be one of {TABLES}. Received: {table!r}")


def run_grid(table, backbone, train, output_dir, *, validation=None, test=None,
             learning_rates=(2.5e-5, 2e-5), num_layers, verbose=0, **budget):
    """Run every cell of Table `table` that has no results yet.

    Args:
        table: int. 2, 3 or 4.
        backbone: str. Backbone spec.
        train, validation, test: `LabeledTexts`.
        output_dir: str. One sub-directory per cell.
        learning_rates: Table 4's learning rates.
        num_layers: int. The backbone's transformer layers (Table 3's rows).
        verbose: int. Keras verbosity.
        **budget: further `fine_tune` arguments shared by every cell
            (epochs, batch_size, sequence_length, learning_rate, seed, …).

    Returns:
        A list of `(cell, metrics)` in table order.
    """
    results = []
    for cell in table_cells(table, num_layers, learning_rates):
        cell_dir = os.path.join(output_dir, cell.name)
        metrics_path = os.path.join(cell_dir, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as file:
                metrics = json.load(file)
        else:
            metrics = fine_tune(
                backbone, train, cell_dir, validation=validation, test=test,
                verbose=verbose, **{**budget, **cell.settings},
            )
        results.append((cell, metrics))
    return results


def _error(metrics):
    split = "test" if "test" in metrics else "validation"
    return split, 100 * metrics[split]["error"]


def write_report(table, results, output_dir, command=""):
    """Write `report.md` and PNG charts for a finished grid.

    Returns:
        The path of `report.md`.
    """
    paper = PAPER_ERRORS.get(table, {})
    errors = {cell.name: _error(metrics)[1] for cell, metrics in results}
    split = _error(results[0][1])[0]
    best = min(errors, key=errors.get)
    lines = [f"# Table {table}: our {split} error (%) beside the paper's (BERT-base, IMDb test)",
             "", f"Command: `{command}`" if command else "", "",
             f"| cell | ours ({split}) | paper | settings |", "|---|---|---|---|"]
    for cell, metrics in results:
        ours = f"{errors[cell.name]:.2f}"
        ours = f"**{ours}**" if cell.name == best else ours
        theirs = paper.get(cell.name)
        settings = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
        lines.append(f"| {cell.name} | {ours} | {'–' if theirs is None else theirs} | {settings} |")
    lines += ["", "Every cell is a `fine_tune` run in its own directory; its `metrics.json` "
              "holds all settings and per-epoch figures.", ""]
    charts = _write_charts(table, results, errors, output_dir)
    lines += [f"![{os.path.basename(c)}]({os.path.basename(c)})" for c in charts]
    path = os.path.join(output_dir, "report.md")
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")
    return path


def _write_charts(table, results, errors, output_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    if table == 3:
        layer_cells = [c for c, _ in results if c.name == "embeddings" or c.name.startswith("layer_")]
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.plot(range(len(layer_cells)), [errors[c.name] for c in layer_cells], marker="o")
        axes.set_xlabel("layer (0 = embeddings)")
        axes.set_ylabel("error %")
        charts.append(_save(figure, output_dir, "error_per_layer.png"))
    if table == 4:
        figure, axes = plt.subplots(figsize=(6, 3.5))
        rates = sorted({c.settings["learning_rate"] for c, _ in results}, reverse=True)
        for rate in rates:
            cells = [c for c, _ in results if c.settings["learning_rate"] == rate]
            axes.plot([c.settings["layer_decay"] for c in cells], [errors[c.name] for c in cells],
                      marker="o", label=f"lr {rate:g}")
        axes.set_xlabel("ξ (layer-wise decay)")
        axes.set_ylabel("error %")
        axes.invert_xaxis()
        axes.legend()
        charts.append(_save(figure, output_dir, "error_vs_decay.png"))
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for cell, metrics in results:
        losses = [epoch.get("loss") for epoch in metrics.get("epochs", [])]
        axes.plot(range(1, len(losses) + 1), losses, label=cell.name)
    axes.set_xlabel("epoch")
    axes.set_ylabel("training loss")
    if len(results) <= 10:
        axes.legend(fontsize=7)
    charts.append(_save(figure, output_dir, "training_curves.png"))
    return charts


def _save(figure, output_dir, name):
    import matplotlib.pyplot as plt

    path = os.path.join(output_dir, name)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

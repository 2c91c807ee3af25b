"""Reports of the paper's grids: `report.md` in the paper's layout, with charts.

Our error sits beside the paper's BERT-base figure wherever the paper has
one: Tables 2–4 exist in the paper for IMDb only; Tables 5–7 have a column
per dataset, picked by the dataset's registry name
(`kerasbert.data.registry.DATASETS`).
"""

import os

# The paper's IMDb test errors (%) of Tables 2–4, BERT-base (../shared/PAPER.md).
PAPER_IMDB = {
    2: {"head": 5.63, "tail": 5.44, "head_tail": 5.42, "segments_mean": 5.89,
        "segments_max": 5.71, "segments_attention": 5.49},
    3: {**{f"layer_{i}": e for i, e in enumerate(
        [11.07, 9.81, 9.29, 8.66, 7.83, 6.83, 6.83, 6.41, 6.04, 5.70, 5.46, 5.42], start=1)},
        "first4_concat": 8.69, "first4_mean": 9.09, "first4_max": 8.76, "last4_concat": 5.43,
        "last4_mean": 5.44, "last4_max": 5.42, "all_concat": 5.44},
    4: {"lr2.5e-05_xi1": 5.52, "lr2.5e-05_xi0.95": 5.46, "lr2.5e-05_xi0.9": 5.44,
        "lr2.5e-05_xi0.85": 5.58, "lr2e-05_xi1": 5.42, "lr2e-05_xi0.95": 5.40,
        "lr2e-05_xi0.9": 5.52, "lr2e-05_xi0.85": 5.65},
}
PAPER_LAYERS = 12  # BERT-base, the encoder of Table 3's per-layer rows
# Tables 5–7 per dataset: BERT-Feat, BERT-FiT, BERT-{ITPT,IDPT,CDPT}-FiT
# (Table 6, which repeats Table 5's in-task, "all <domain>" and "all" rows)
# and the multi-task rows of Table 7.
PAPER_BY_DATASET = {
    "imdb": {"feat": 6.79, "fit": 5.40, "itpt_fit": 4.37, "idpt_fit": 4.88, "cdpt_fit": 5.18,
             "mfit_fit": 5.36, "cdpt_mfit_fit": 4.96},
    "yelp_p": {"feat": 2.39, "fit": 2.28, "itpt_fit": 1.92, "idpt_fit": 1.87, "cdpt_fit": 1.97,
               "mfit_fit": 2.19, "cdpt_mfit_fit": 2.06},
    "yelp_f": {"feat": 30.47, "fit": 30.06, "itpt_fit": 29.42, "idpt_fit": 29.25,
               "cdpt_fit": 29.20},
    "trec": {"feat": 4.20, "fit": 2.80, "itpt_fit": 3.20, "idpt_fit": 2.20, "cdpt_fit": 2.80},
    "yahoo": {"feat": 22.72, "fit": 22.42, "itpt_fit": 22.38, "idpt_fit": 21.86,
              "cdpt_fit": 21.94},
    "ag_news": {"feat": 5.92, "fit": 5.25, "itpt_fit": 4.80, "idpt_fit": 4.88, "cdpt_fit": 5.08,
                "mfit_fit": 5.20, "cdpt_mfit_fit": 5.13},
    "dbpedia": {"feat": 0.70, "fit": 0.71, "itpt_fit": 0.68, "idpt_fit": 0.65, "cdpt_fit": 0.67,
                "mfit_fit": 0.68, "cdpt_mfit_fit": 0.67},
    "sogou": {"feat": 2.50, "fit": 2.43, "itpt_fit": 1.93},
}
ROW_NAMES = {"feat": "BERT-Feat", "fit": "BERT-FiT", "itpt_fit": "BERT-ITPT-FiT",
             "idpt_fit": "BERT-IDPT-FiT", "cdpt_fit": "BERT-CDPT-FiT",
             "mfit_fit": "BERT-MFiT-FiT", "cdpt_mfit_fit": "BERT-CDPT-MFiT-FiT"}
TITLES = {2: "long-text strategies", 3: "features of each layer", 4: "layer-wise decay ξ × learning rate",
          5: "further pre-training", 6: "BERT-Feat, BERT-FiT and further pre-training",
          7: "multi-task fine-tuning"}


def error_of(metrics):
    """`(split, error %)` of a run: its test error, else its validation error."""
    split = "test" if "test" in metrics else "validation"
    return split, 100 * metrics[split]["error"]


def paper_errors(table, dataset):
    """The paper's figures for Table `table`'s cells on `dataset`, or `{}`."""
    if table in PAPER_IMDB:
        return PAPER_IMDB[table]
    return PAPER_BY_DATASET.get(dataset, {})


def write_report(table, results, output_dir, command="", dataset=None):
    """Write `report.md` and PNG charts for a finished grid.

    Args:
        table: int. The paper's table.
        results: what `kerasbert.reproduction.grids.run_grid` returned.
        output_dir: str. The grid directory.
        command: str. The command that ran the grid, quoted in the report.
        dataset: str or None. The dataset's registry name, which picks the
            paper's column in Tables 5–7.

    Returns:
        The path of `report.md`.
    """
    tasks = list(results[0][1])
    lines = [f"# Table {table}: {TITLES[table]}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if table == 7:
        lines += _multitask_table(results, tasks)
    else:
        if table == 4:
            lines += _decay_matrix(results, tasks[0])
        lines += _single_task_table(table, results, tasks[0], dataset)
    lines += ["", "Every cell is a recipe run in its own directory, named after the cell; its "
              "`metrics.json` holds all settings and per-epoch figures.", ""]
    charts = _write_charts(table, results, tasks[0], output_dir)
    lines += [f"![{os.path.basename(c)}]({os.path.basename(c)})" for c in charts]
    path = os.path.join(output_dir, "report.md")
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")
    return path


def _bold_min(values):
    best = min(values.values()) if values else None
    return {k: f"**{v:.2f}**" if v == best else f"{v:.2f}" for k, v in values.items()}


def _single_task_table(table, results, task, dataset):
    errors = {cell.name: error_of(per_task[task])[1] for cell, per_task in results}
    split = error_of(results[0][1][task])[0]
    shown = _bold_min(errors)
    paper = paper_errors(table, dataset)
    notes = []
    layer_rows = [c for c, _ in results if c.name.startswith("layer_")]
    if table == 3 and len(layer_rows) != PAPER_LAYERS:
        # Layer i of a shallower encoder is not the paper's layer i.
        paper = {k: v for k, v in paper.items() if not k.startswith("layer_")}
        notes.append(f"The paper's per-layer figures are for {PAPER_LAYERS} layers and are left "
                     f"out beside this {len(layer_rows)}-layer encoder.")
    source = "IMDb" if table in PAPER_IMDB else (dataset or "this dataset")
    header = f"| cell | ours ({split} error %) | paper (BERT-base, {source} test) |"
    rule = "|---|---|---|"
    if table == 6:
        header += " Δ vs BERT-Feat (ours) |"
        rule += "---|"
    lines = [header + " settings |", rule + "---|"]
    for cell, _ in results:
        theirs = paper.get(cell.name)
        row = (f"| {ROW_NAMES.get(cell.name, cell.name)} | {shown[cell.name]} | "
               f"{'–' if theirs is None else f'{theirs:.2f}'} |")
        if table == 6:
            feat = errors.get("feat")
            row += " – |" if cell.name == "feat" or not feat else (
                f" {100 * (feat - errors[cell.name]) / feat:+.1f} % |")
        settings = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
        if cell.pretraining:
            settings = ", ".join(filter(None, [f"backbone=pretraining/{cell.pretraining}/backbone",
                                               settings]))
        lines.append(f"{row} {settings} |")
    if not paper:
        lines += ["", f"The paper reports no figures for {source}."]
    lines += [line for note in notes for line in ("", note)]
    if table == 6:
        lines += ["", "Δ is the relative error reduction against BERT-Feat, as in the paper's "
                  "Avg Δ column."]
    return lines


def _decay_matrix(results, task):
    """Table 4 as the paper lays it out: a row per learning rate, a column per ξ."""
    split, _ = error_of(results[0][1][task])
    errors = {(c.settings["learning_rate"], c.settings["layer_decay"]): error_of(m[task])[1]
              for c, m in results}
    shown = _bold_min(errors)
    rates = list(dict.fromkeys(rate for rate, _ in errors))
    decays = list(dict.fromkeys(decay for _, decay in errors))
    lines = [f"Ours ({split} error %):", "",
             "| lr |" + "".join(f" ξ={d:.2f} |" for d in decays),
             "|---|" + "---|" * len(decays)]
    for rate in rates:
        lines.append(f"| {rate:g} |" + "".join(f" {shown.get((rate, d), '–')} |" for d in decays))
    return lines + ["", "Per cell, beside the paper's IMDb figure where it ran the same cell:", ""]


def _multitask_table(results, tasks):
    header = "| method |" + "".join(f" {t}: ours | {t}: paper |" for t in tasks)
    lines = [header, "|---|" + "---|---|" * len(tasks)]
    rows = []
    for cell, per_task in results:
        rows.append((ROW_NAMES.get(cell.name, cell.name), cell.name,
                     {t: error_of(per_task[t]) for t in tasks}))
        if cell.multitask:
            rows.append((f"{ROW_NAMES[cell.name][:-4]} (joint phase only)", None,
                         {t: error_of(per_task[t]["joint"]) for t in tasks}))
    shown = {t: _bold_min({label: errors[t][1] for label, _, errors in rows}) for t in tasks}
    for label, name, errors in rows:
        cells = ""
        for t in tasks:
            theirs = PAPER_BY_DATASET.get(t, {}).get(name)
            cells += (f" {shown[t][label]} ({errors[t][0][:3]}.) |"
                      f" {'–' if theirs is None else f'{theirs:.2f}'} |")
        lines.append(f"| {label} |{cells}")
    lines += ["", "Error %; (tes.) = test split, (val.) = validation split. The paper's "
              "Table 7 covers IMDb, Yelp P., AG's News and DBpedia only."]
    return lines


def _write_charts(table, results, task, output_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errors = {cell.name: error_of(per_task[task])[1] for cell, per_task in results}
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
    if table in (5, 6, 7):
        figure, axes = plt.subplots(figsize=(6, 3.5))
        names = [c.name for c, _ in results]
        axes.bar(range(len(names)), [errors[n] for n in names])
        axes.set_xticks(range(len(names)), [ROW_NAMES.get(n, n) for n in names],
                        rotation=20, fontsize=7)
        axes.set_ylabel(f"{task} error %")
        charts.append(_save(figure, output_dir, "error_per_cell.png"))
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for cell, per_task in results:
        losses = [epoch.get("loss") for epoch in per_task[task].get("epochs", [])]
        if losses:
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

"""A finished grid's results read per cell and seed: errors and row names.

Shared by `kerasbert.reproduction.reports` (the tables) and
`kerasbert.reproduction.charts` (the figures). `results` is always
`{seed: run_grid's list}`: per seed, `(cell, {task: metrics})` pairs.
"""

# The paper's names of the rows of Tables 5–7.
ROW_NAMES = {"feat": "BERT-Feat", "fit": "BERT-FiT", "itpt_fit": "BERT-ITPT-FiT",
             "idpt_fit": "BERT-IDPT-FiT", "cdpt_fit": "BERT-CDPT-FiT",
             "mfit_fit": "BERT-MFiT-FiT", "cdpt_mfit_fit": "BERT-CDPT-MFiT-FiT"}


def error_of(metrics):
    """`(split, error %)` of a run: its test error, else its validation error."""
    split = "test" if "test" in metrics else "validation"
    return split, 100 * metrics[split]["error"]


def seed_errors(results, task):
    """`({cell name: [error % per seed]}, split)` of a grid's results for `task`.

    Args:
        results: `{seed: run_grid's list}`.
        task: str. The task's name.

    Example:
    ```python
    from kerasbert.reproduction import grids, results
    cell = grids.Cell("fit")
    runs = {0: [(cell, {"t": {"test": {"error": 0.05}}})],
            1: [(cell, {"t": {"test": {"error": 0.25}}})]}
    results.seed_errors(runs, "t")  # ({'fit': [5.0, 25.0]}, 'test')
    ```
    """
    errors, split = {}, None
    for per_seed in results.values():
        for cell, per_task in per_seed:
            split, error = error_of(per_task[task])
            errors.setdefault(cell.name, []).append(error)
    return errors, split

"""The paper's experiments: grids of runs (Tables 2-7, Figures 2-4), the
statistics that compare their rows over seeds, and reports laid out like the
paper, with its figures and charts.

Not loaded by `import kerasbert`: import it as `kerasbert.reproduction`
(`from kerasbert.reproduction import grids, reports, results, statistics,
charts`). `recipes/reproduce.py` drives it from the command line.
"""

from kerasbert.reproduction import charts  # noqa: F401
from kerasbert.reproduction import grids  # noqa: F401
from kerasbert.reproduction import reports  # noqa: F401
from kerasbert.reproduction import results  # noqa: F401
from kerasbert.reproduction import statistics  # noqa: F401

"""The paper's experiments: grids of runs (Tables 2-7) and reports laid out
like the paper, with its figures and charts.

Not loaded by `import kerasbert`: import it as `kerasbert.reproduction`
(`from kerasbert.reproduction import grids, reports`). `recipes/reproduce.py`
drives it from the command line.
"""

from kerasbert.reproduction import grids  # noqa: F401
from kerasbert.reproduction import reports  # noqa: F401

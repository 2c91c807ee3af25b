"""Whether output goes to a person who sees a line redrawn in place."""

import sys


def is_interactive(stream=None):
    """Whether `stream` (default: standard output) is a terminal, or
    standard output in a notebook, where a progress bar can be redrawn in
    place; a file, a pipe or a closed stream is not.

    Example:
    ```python
    import io
    from kerasbert.utils.console import is_interactive
    is_interactive(io.StringIO())  # False
    ```
    """
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()
                or (stream is sys.stdout and "ipykernel" in sys.modules))

"""The shipped model weights (data files; see the model cards beside them).

This folder is installed as a package so that `pip install .` and `pip install -e .` both find
the weights the same way, through importlib.resources.
"""

from importlib.resources import files


def locate(filename: str):
    """A path-like to a file of this folder."""
    return files(__name__) / filename

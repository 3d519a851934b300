"""The one error hierarchy of refsnn.

Every problem a user can cause (a malformed file, a wrong shape, a non-finite number, an
unknown option) ends in a subclass of :class:`RefsnnError`.  The command line turns these into
one-line messages; library users can catch the base class.
"""

from __future__ import annotations


class RefsnnError(Exception):
    """Base class of every error refsnn raises on purpose."""


def _one_line(value) -> str:
    """``str(value)`` on one line (an array's repr spans lines), at most 200 characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


class ModelFormatError(RefsnnError):
    """A model or network file (or an in-memory description) breaks the schema.

    Parameters
    ----------
    file : str
        The file the problem is in (``"<memory>"`` for a graph built in Python).
    path : str
        The HDF5 path of the group or dataset, e.g. ``/nodes/conv1``.
    field : str
        The attribute, dataset or property that is wrong, e.g. ``weight`` or ``shape``.
    expected : str
        What the schema asks for.
    found : str
        What was there instead.
    """

    def __init__(self, file: str, path: str, field: str, expected: str, found: str):
        self.file = str(file)
        self.path = path
        self.field = field
        self.expected = _one_line(expected)
        self.found = _one_line(found)
        super().__init__(  # one line, whatever the names hold
            " ".join(f"{self.file}: {path}: {field}: expected {self.expected}, found "
                     f"{self.found}".split())
        )


class DataFormatError(RefsnnError):
    """A data set file or an input array is malformed (shape, dtype, NaN/inf, labels)."""


class ConversionError(RefsnnError):
    """A graph cannot be converted with the chosen method and options."""


class OptionError(RefsnnError):
    """An option value is invalid or an option does not apply to the call."""

"""A dependency-free progress bar on stderr, shown only on a terminal."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Draw ``label [#####.....] done/total  elapsed`` on one stderr line.

    Parameters
    ----------
    label : str
    enabled : bool
        When false every call does nothing (pipes, ``--json``, CI logs).
    """

    def __init__(self, label: str, enabled: bool, width: int = 30):
        self.label = label
        self.enabled = enabled
        self.width = width
        self.start = time.monotonic()
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.start
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total}  {elapsed:5.1f} s")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()

"""Fail when the built manual shows a command-line option with a dash that cannot be typed.

    python docs/check_options.py docs/_build/html

Sphinx's smartquotes turn ``--per-channel`` in running text and table cells into
``–per-channel`` (an en dash; ``---x`` into an em dash), which a reader copying the option
into a shell cannot run. ``docs/conf.py`` turns smartquotes off; this check reads every
built HTML page and lists each en or em dash that stands where an option starts (after a
space, a tag or an opening bracket, before a lowercase letter). Exit status 1 when there is
one, 0 otherwise. CI runs it right after the Sphinx build (``.ci/run``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: An en or em dash where an option starts: not after a word character, before [a-z].
OPTION_DASH = re.compile(r"(?<![\w\u2013\u2014])[\u2013\u2014][a-z][a-z0-9-]*")


def dashed_options(root: Path) -> list[str]:
    """``path: option`` for every option rendered with a dash in the HTML under ``root``."""
    found = []
    for page in sorted(root.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for m in OPTION_DASH.finditer(text):
            found.append(f"{page.relative_to(root)}: {m.group(0)!r}")
    return found


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python docs/check_options.py BUILT_HTML_FOLDER", file=sys.stderr)
        return 2
    found = dashed_options(Path(args[0]))
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} option(s) rendered with an en/em dash (smartquotes?)",
              file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

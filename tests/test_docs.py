"""The docs site: it builds with `mkdocs build --strict` (a broken link or anchor, a missing page, a page left out
of the navigation all fail it), and its flag reference, generated from the schema, says what `main.py --help` says."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from ftlab.config import flag_reference
from tests.conftest import ROOT


def test_the_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    # the generated reference and the repository's figures are part of the site
    flags = (tmp_path / "site" / "reference" / "flags" / "index.html").read_text(encoding="utf-8")
    assert "--max_length" in flags
    figures = sorted(path.name for path in (ROOT / "img").glob("*.png"))
    assert figures and sorted(path.name for path in (tmp_path / "site" / "img").glob("*.png")) == figures


def _help_flags() -> dict[str, tuple]:
    """flag -> (default or None, choices or None), as `main.py --help` prints them (wide enough that no help text
    wraps: an entry is its flag's line, plus the next line where the help starts there)."""
    env = {**os.environ, "COLUMNS": "10000"}
    text = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout
    entries = re.findall(r"^  (--\w+)(?: \{([^}]*)\}| \[?[A-Z_0-9]+\]?)?(.*(?:\n {4,}\S.*)?)", text, re.MULTILINE)
    flags = {}
    for flag, choices, help_text in entries:
        default = re.search(r"\(default: ([^()]*)\)$", help_text.strip())
        flags[flag] = (default.group(1) if default else None, tuple(choices.split(",")) if choices else None)
    flags.pop("--help", None)
    return flags


def _reference_flags() -> dict[str, tuple]:
    """flag -> (default or None, choices or None), read back from the generated page's tables."""
    flags = {}
    for line in flag_reference().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if not cells or not cells[0].startswith("`--"):
            continue
        default = None if cells[1] == "–" else cells[1].strip("`")
        choices = tuple(re.findall(r"`([^`]+)`", cells[2])) if cells[2].startswith("one of ") else None
        flags[cells[0].strip("`")] = (default, choices)
    return flags


def test_the_flag_reference_says_what_help_says():
    help_flags, reference = _help_flags(), _reference_flags()
    assert len(help_flags) > 60  # the parse above found the flags, not a changed layout's leftovers
    assert sorted(set(help_flags) - set(reference)) == [], "flags in --help missing from the reference"
    assert sorted(set(reference) - set(help_flags)) == [], "flags in the reference that --help does not have"
    assert {flag: value for flag, value in reference.items() if help_flags[flag] != value} == {}

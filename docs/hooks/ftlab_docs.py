"""mkdocs hooks of ftlab's docs (mkdocs.yml `hooks:`): the pages that are not written by hand.

- reference/flags.md, generated from the configuration schema (ftlab.config.reference) on every build. Generated
  here rather than committed: a committed copy would need regenerating whenever a flag changes and a test to catch
  when it was not; built from the schema, the reference cannot differ from the flags in the first place.
- img/*.png, the repository's figures (the README shows them too; copied there from the studies' outputs, or
  written there with `--img_dir img`). mkdocs serves only files under docs/, and a copy would drift; a `docs/img`
  symlink breaks where a checkout has no symlinks (Windows without core.symlinks gets a text file). Here each figure is added to the site from where it lies, and
  a page that names a missing figure fails `mkdocs build --strict` like any broken link.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
# The reference must describe this checkout's flags, whatever ftlab the environment has installed (an editable
# install can point at another checkout): this checkout goes first on the path.
sys.path.insert(0, str(ROOT))

from ftlab.config import flag_reference  # noqa: E402  (after the path is set)

FIGURES = ROOT / "img"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/flags.md", content=flag_reference()))
    for figure in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"img/{figure.name}", abs_src_path=str(figure)))
    return files

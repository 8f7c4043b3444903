"""The results site: a static Jupyter Book of the README, the docs, the report and the executed notebook of every run the report
reads (explored and pre-registered), with their figures. Built offline into `_build/book/_build/html/`.

Jupyter Book 1 (Sphinx + MyST-NB) rather than 2: JB2 downloads its HTML theme when it builds, and this project builds without
network. The sources are the repository's own files, read in place (nothing is copied or executed), so the site cannot drift
from them; the table of contents is generated because the runs it lists change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from iml_nb.analysis.claims import CLAIMS, swapped_arm
from iml_nb.analysis.report import latest_complete_run
from iml_nb.core.env import project_path

PAGES = (  # in reading order; paths from the repository root
    "docs/background.md",
    "docs/usage.md",
    "docs/results.md",
    "outputs/report.md",
    "docs/deviations.md",
    "docs/speed.md",
    "docs/testing.md",
)
# Jupyter Book's default extensions less thebe (its script comes from a CDN, and its set-up ran twice here: a
# script error on every page) and intersphinx (unused). Likewise nb_ipywidgets_js = {}: the tqdm bars' widget manager is a CDN script too.
EXTENSIONS = [
    "sphinx_togglebutton",
    "sphinx_copybutton",
    "myst_nb",
    "jupyter_book",
    "sphinx_comments",
    "sphinx_external_toc",
    "sphinx_design",
    "sphinx_book_theme",
]
NOT_SOURCES = [".venv", "_build", "tests", "outputs/batches", "outputs/nbval", "outputs/diagnostics", "outputs/.cache", ".*"]


def notebook_pages(outputs: str | os.PathLike = "outputs") -> list[str]:
    """The executed notebook of every run the report reads (each claim's run, explored before pre-registered as the report lists
    them, and the swapped arm a natural-language row pairs with it), in notebook order; for a notebook no claim reads, its
    newest complete run (paths from the repository root)."""
    root, outputs = project_path("."), project_path(outputs)
    pages = []
    for source in sorted((root / "notebooks").glob("*.ipynb")):
        claims = [c for c in CLAIMS if c.notebook == source.stem]
        runs = [latest_complete_run(source.stem, outputs, c.answers) for c in claims] or [latest_complete_run(source.stem, outputs)]
        runs += [swapped_arm(r) for c, r in zip(claims, runs) if c.arms and r is not None]  # the second orientation it reads
        for run in dict.fromkeys(r for r in runs if r is not None):  # one page per run, in the report's order
            if (run / source.name).exists():
                pages.append(str((run / source.name).relative_to(root)))
    return pages


def toc(outputs: str | os.PathLike = "outputs") -> dict:
    """Jupyter Book's _toc.yml: the README as the landing page, the docs and report, then the executed notebooks."""
    strip = lambda p: str(Path(p).with_suffix(""))  # noqa: E731 - the toc names files without their suffix
    return {
        "format": "jb-book",
        "root": "README",
        "parts": [
            {"caption": "Guide and results", "chapters": [{"file": strip(p)} for p in PAGES]},
            {
                "caption": "Executed notebooks (curated runs)",
                # titled by notebook and run: a notebook with an explored and a pre-registered run has two pages of one heading
                "chapters": [{"file": strip(p), "title": f"{Path(p).stem} · {Path(p).parent.name}"} for p in notebook_pages(outputs)],
            },
        ],
    }


def config() -> dict:
    """Jupyter Book's _config.yml: no execution (the notebooks are the committed runs), no network, headings linkable."""
    return {
        "title": "iml-notebooks",
        "author": "iml-notebooks",
        "only_build_toc_files": True,
        "exclude_patterns": NOT_SOURCES,
        "execute": {"execute_notebooks": "off"},
        "sphinx": {"config": {"extensions": EXTENSIONS, "myst_heading_anchors": 3, "html_show_copyright": False, "nb_ipywidgets_js": {}}},
    }


def build(out: str | os.PathLike = "_build/book", outputs: str | os.PathLike = "outputs") -> Path:
    """Write the generated _toc.yml and _config.yml into `out`, build the site and return its html folder (index.html inside).
    Any Sphinx warning fails the build: a link to a missing page or heading is one."""
    root, out = project_path("."), project_path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "_toc.yml").write_text(yaml.safe_dump(toc(outputs), sort_keys=False))
    (out / "_config.yml").write_text(yaml.safe_dump(config(), sort_keys=False))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"  # its console script; the package has no __main__
    command = [str(jupyter_book), "build", str(root), "--toc", str(out / "_toc.yml")]
    command += ["--config", str(out / "_config.yml"), "--path-output", str(out), "--builder", "html", "-W", "--keep-going"]
    subprocess.run(command, check=True, cwd=root)
    return out / "_build" / "html"


__all__ = ["PAGES", "build", "config", "notebook_pages", "toc"]

"""Debian's Chromium as the browser tests start it (Playwright drives it; no browser download)."""

import os
import shutil
from pathlib import Path

import pytest

REQUIRE = os.environ.get("IML_NB_REQUIRE_BROWSER") == "1"  # .ci/run sets it: there a missing browser fails instead of skipping
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's own probe starts Chromium: the closed network refuses Google's background services otherwise.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str):
    (pytest.fail if REQUIRE else pytest.skip)(f"no browser test here: {reason}")


def require_browser() -> None:
    """Skip (or, in CI, fail) unless Chromium and the playwright package are both here."""
    if not Path(CHROMIUM).exists():
        unavailable("Chromium is not installed (`apt-get install chromium`, as .ci/run does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is missing (requirements.txt pins it)")

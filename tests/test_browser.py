"""The explorer in a real browser: JupyterLab on localhost with temporary config, data and runtime folders; Debian's
Chromium driven by Playwright (no browser download); every cell run from the Run menu; then a chart and a working widget are checked
on the page (the stage dropdown changes, the chart changes) and a screenshot is saved to outputs/explorer.png.

Marked `browser`; `.ci/run` installs Chromium and sets IML_NB_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
"""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml
from chromium import CHROMIUM, CHROMIUM_ARGS, require_browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "outputs" / "explorer.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What a researcher types into 01's parameters cell for a quick look: the nbval run's test size.
MAIN_VALUES = {
    k: v for k, v in yaml.safe_load((ROOT / "tests" / "params" / "01_main_two_stage.yaml").read_text()).items() if k != "output_dir"
}


def _fresh_copy(name: str, root: Path, values: dict) -> None:
    """notebooks/<name>.ipynb into the Lab's root with `values` typed into its parameters cell (each line keeps its type and comment)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = []
    for line in params.source.splitlines():
        m = re.match(r"(\w+): (\w+) = (.*?)(  #.*)?$", line)
        if m and m.group(1) in values:
            line = f"{m.group(1)}: {m.group(2)} = {values[m.group(1)]!r}{m.group(4) or ''}"
        lines.append(line)
    params.source = "\n".join(lines)
    assert all(f"{k}: " in params.source for k in values)
    nbformat.write(nb, root / f"{name}.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server whose root holds copies of 00_explore.ipynb and 01_main_two_stage.ipynb writing their run folders to a
    temporary place, so the browser session neither autosaves into notebooks/ nor leaves a run folder in outputs/."""
    require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    _fresh_copy("00_explore", root, {"output_dir": str(tmp / "run")})
    _fresh_copy("01_main_two_stage", root, {**MAIN_VALUES, "output_dir": str(tmp / "run01")})
    # No "get Jupyter news?" toast over the page (and no news or update checks, which the closed network would refuse).
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false, "doNotDisturbMode": true}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"),
    }
    log = open(tmp / "lab.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
            f"--LabApp.user_settings_dir={tmp / 'settings'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield {"url": url, "token": token, "tmp": tmp}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.browser
def test_explorer_runs_in_jupyterlab_and_its_widgets_redraw_the_chart(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 2400})
        try:
            _open_and_run_all(page, lab, "00_explore.ipynb")
            # The last cell's print in an output area (the same words stand in its source): every cell ran.
            page.locator(".jp-OutputArea-output", has_text="Try it waits for its button").wait_for(timeout=240_000)

            chart = page.locator(".jp-OutputArea-output img[src^='data:image/svg+xml']").first
            chart.wait_for(timeout=60_000)
            before = chart.get_attribute("src")
            assert "exact match" in urllib.parse.unquote(before)  # the main experiment's EM curves, drawn by the kernel

            stage = page.locator(".widget-dropdown", has=page.locator("label", has_text="stage")).locator("select")
            stage.select_option(label="2")
            page.wait_for_function(
                "(before) => { const i = document.querySelector(\"img[src^='data:image/svg+xml']\");"
                " return i && i.getAttribute('src') !== before; }",
                arg=before,
                timeout=60_000,
            )
            after = page.locator("img[src^='data:image/svg+xml']").first.get_attribute("src")
            # Stage 2 only: the Stage-1 boundary rule is gone, the Stage-2 one stays (the legend still names both).
            assert "text: Stage 1" in urllib.parse.unquote(before) and "text: Stage 1" not in urllib.parse.unquote(after)
            assert "text: Stage 2" in urllib.parse.unquote(after)

            stage.select_option(label="all")  # back to both stages for the screenshot
            page.wait_for_function(
                "(after) => { const i = document.querySelector(\"img[src^='data:image/svg+xml']\");"
                " return i && i.getAttribute('src') !== after; }",
                arg=after,
                timeout=60_000,
            )
            page.locator(".widget-dropdown", has=page.locator("label", has_text="subset")).locator("select").select_option(label="d2consis")
            page.wait_for_selector("text=test: d2consis", timeout=60_000)  # the texts of the first Define-bar Stage-2 alias
            SCREENSHOT.parent.mkdir(exist_ok=True)
            explorer = page.locator(".jp-OutputArea-output", has=page.locator("text=Stored results")).first
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(SCREENSHOT))
        except Exception:  # what the page showed, for the CI log reader
            page.screenshot(path=str(lab["tmp"] / "failure.png"), full_page=True)
            (lab["tmp"] / "failure.html").write_text(page.content())
            print(f"page at failure: {lab['tmp'] / 'failure.png'}, {lab['tmp'] / 'failure.html'}")
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000


def _open_and_run_all(page, lab, name: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")  # JupyterLab may ask once which kernel to start
    try:
        dialog.locator("button", has_text="Select").click(timeout=15_000)
    except PlaywrightTimeout:
        pass
    # :visible: with a second notebook open in the same Lab, the other tab's indicator is hidden
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']:visible", timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


@pytest.mark.browser
def test_main_notebook_run_all_runs_its_parameters_cell_as_written(lab):
    """Freshly opened, *Run All* on 01 runs what its parameters cell says (here typed in at the test size): the run folder's
    config is exactly the one those values build, so no hidden cell overrode them."""
    from playwright.sync_api import sync_playwright

    from iml_nb.core.results import to_jsonable
    from iml_nb.people_qa.config import build_config

    run = lab["tmp"] / "run01"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 2400})
        try:
            _open_and_run_all(page, lab, "01_main_two_stage.ipynb")
            deadline = time.monotonic() + 600
            while not (run / "summary.json").exists():
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
                assert errors.count() == 0, errors.first.inner_text()
                assert time.monotonic() < deadline, "01 did not finish in 10 minutes"
                time.sleep(2)
        finally:
            browser.close()
    assert json.loads((run / "config.json").read_text()) == to_jsonable(build_config(**MAIN_VALUES, output_dir=str(run)).to_dict())
    assert (run / "data" / "README.md").exists()  # its data, as a dataset, beside the metrics

"""The results site: `make book` builds it from the committed files without network, every internal link (page and heading)
resolves, and in Chromium every page renders its heading and figures with no request leaving the file system and no script error.

Marked `browser` (and `slow`: it builds the site); `.ci/run` installs Chromium, so there a missing browser fails."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bs4 import BeautifulSoup
from chromium import CHROMIUM, CHROMIUM_ARGS, require_browser

from iml_nb.analysis import book, report

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return book.build(out=tmp_path_factory.mktemp("book"))


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)


def test_the_toc_lists_the_docs_the_report_and_the_executed_notebook_of_every_run_the_report_reads():
    toc = book.toc()
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert toc["root"] == "README" and "outputs/report" in files and "docs/results" in files
    notebooks = book.notebook_pages()
    assert len(set(notebooks)) == len(notebooks) and len({Path(p).name for p in notebooks}) >= 9  # every notebook with a run, once
    assert all(p.startswith("outputs/") and "/batches/" not in p for p in notebooks)
    read = {row for row in report.build()["run"] if row}  # the run folders the report's rows read
    assert read <= {str(Path(p).parent) for p in notebooks}  # the pre-registered runs among them


def test_every_internal_link_reaches_a_page_and_heading(site):
    ids: dict[Path, set[str]] = {}
    for page in _pages(site):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        ids[page] = {tag["id"] for tag in soup.find_all(id=True)}
    broken = []
    for page in ids:
        for a in BeautifulSoup(page.read_text(), "html.parser").find_all("a", href=True):
            url = urlsplit(a["href"])
            if url.scheme or url.netloc:  # http(s), mailto: the outside world
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {a['href']}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in ids.get(target, set()):
                broken.append(f"{page.relative_to(site)} -> {a['href']} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_page_renders_offline_with_its_figures(site):
    require_browser()
    from playwright.sync_api import sync_playwright

    outside, errors, report = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith("file:") else (outside.append(route.request.url), route.abort())
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            for file in _pages(site):
                if file.name in ("genindex.html", "search.html"):  # Sphinx's own pages, without content of ours
                    continue
                page.goto(file.as_uri(), wait_until="load")
                heading = page.locator("main h1").first.inner_text()
                images = page.eval_on_selector_all(
                    "main img", "imgs => imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))"
                )
                assert heading.strip(), f"{file.name}: no heading"
                assert all(i["ok"] for i in images), (
                    f"{file.relative_to(site)}: images that did not load: {[i['src'] for i in images if not i['ok']]}"
                )
                report.append((file.relative_to(site), len(images)))
        finally:
            browser.close()
    assert not outside and not errors, (outside, errors)
    shown = dict(report)
    assert shown[Path("docs/results.html")] >= 9  # the figures of every paper section the results page discusses
    notebooks = [p for p in shown if p.parts[0] == "outputs" and p.name != "report.html"]
    assert len(notebooks) >= 9 and all(shown[p] >= 1 for p in notebooks), shown  # every executed notebook shows its charts

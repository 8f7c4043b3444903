"""Unknown parameter names fail the same way under `python -m iml_nb run` and plain papermill; a bad `model` names itself."""

import papermill as pm
import pytest
from test_runner import venv_kernel  # noqa: F401  (kernel "python3" is this venv's Python)

from iml_nb.core import parameters
from iml_nb.core.env import project_path
from iml_nb.people_qa import config
from iml_nb.runs import runner

PARAMS_CELL = 'x: int = 1  # a number\nname: str = "a"  # a name\noutput_dir: str = ""  # where'


def test_injected_names_are_checked_against_the_parameters_cell():
    history = ["", PARAMS_CELL, '# Parameters\nx = 2\nnmae = "b"\n', "the checking cell"]
    with pytest.raises(parameters.ConfigError, match=r"unknown parameters \['nmae'\] for nb.ipynb; valid: \['name', 'output_dir', 'x'\]"):
        parameters.check_injected({"In": history}, "nb.ipynb")
    parameters.check_injected({"In": ["", PARAMS_CELL, "# Parameters\nx = 2\n", "this"]}, "nb.ipynb")
    parameters.check_injected({"In": ["", PARAMS_CELL, "this"]}, "nb.ipynb")  # run by hand: nothing injected
    with pytest.raises(parameters.ConfigError, match="no `parameters` cell"):
        parameters.check_injected({"In": ["", "# Parameters\nx = 2\n", "this"]}, "nb.ipynb")


def test_declared_in_reads_only_typed_assignment_cells():
    assert parameters.declared_in(PARAMS_CELL) == ["x", "name", "output_dir"]
    assert parameters.declared_in("x = 1") is None and parameters.declared_in("import os") is None
    assert parameters.assigned_in('# Parameters\nx = 2\nname = "b"\n') == ["x", "name"]


@pytest.mark.slow
def test_runner_and_notebook_raise_the_same_error(tmp_path, venv_kernel):  # noqa: F811
    """Plain papermill on a real notebook: the typo fails in the first code cell, before any data or model exists."""
    notebook = project_path("notebooks/04_set_inclusion.ipynb")
    with pytest.raises(parameters.ConfigError) as from_runner:
        runner.check_parameters(notebook, {"n_vras": 60})
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as from_kernel:
        pm.execute_notebook(
            str(notebook),
            str(out),
            parameters={"n_vras": 60, "output_dir": str(tmp_path / "run")},
            kernel_name="python3",
            cwd=str(project_path(".")),
            progress_bar=False,
        )
    assert from_kernel.value.ename == "ConfigError"
    assert (
        from_kernel.value.evalue.split(";")[0]
        == str(from_runner.value).split(";")[0]
        == "unknown parameters ['n_vras'] for 04_set_inclusion.ipynb"
    )
    assert not (tmp_path / "run").exists()  # failed before the run folder was made


@pytest.mark.parametrize(
    "model, gguf_file, match",
    [
        ("no-such-model", "", r"`model`: 'no-such-model' is not a named size.*pythia-tiny.*smollm2-135m.*config\.json.*gguf_file"),
        ("Org/not-cached", "", r"`model`: 'Org/not-cached' .*HF_HUB_OFFLINE=0"),
    ],
)
def test_unknown_model_is_a_config_error(model, gguf_file, match):
    with pytest.raises(parameters.ConfigError, match=match):
        config.build_config(model=model, gguf_file=gguf_file)


def test_local_model_folders_need_their_files(tmp_path):
    with pytest.raises(parameters.ConfigError, match=r"`model`: the folder .* has no config\.json"):
        config.build_config(model=str(tmp_path))
    with pytest.raises(parameters.ConfigError, match=r"`gguf_file`: no file 'm.gguf'"):
        config.build_config(model=str(tmp_path), gguf_file="m.gguf")
    (tmp_path / "m.gguf").write_bytes(b"")
    with pytest.raises(parameters.ConfigError, match=r"`model`: .* is a file; give its folder"):
        config.build_config(model=str(tmp_path / "m.gguf"))
    assert config.build_config(model=str(tmp_path), gguf_file="m.gguf").model.gguf_file == "m.gguf"
    (tmp_path / "config.json").write_text("{}")
    assert config.build_config(model=str(tmp_path)).model.name == str(tmp_path)

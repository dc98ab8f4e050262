"""Every public name is importable and listed exactly once in its package's __all__."""

import importlib

import pytest

PACKAGES = [
    "algoperf_reinit",
    "algoperf_reinit.data_efficiency",
    "algoperf_reinit.schedules",
    "algoperf_reinit.reinit",
    "algoperf_reinit.submission",
    "algoperf_reinit.runner",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_are_unique(name):
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__))
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_version_is_a_string():
    import algoperf_reinit

    assert isinstance(algoperf_reinit.__version__, str) and algoperf_reinit.__version__.count(".") == 2


def test_plotting_is_not_imported_by_the_library():
    # Plotting imports the library, never the reverse (matplotlib stays off the hot path).
    import subprocess
    import sys

    code = "import sys, algoperf_reinit; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_subpackage_is_listed_for_installation():
    # pyproject lists packages explicitly (workloads/ is renamed on install), so a new
    # subpackage must be added there or wheels silently leave it out.
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "algoperf_reinit").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)

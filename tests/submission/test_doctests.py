"""The examples in the docstrings of ``algoperf_reinit.submission`` run as written."""

import doctest
import importlib
import pkgutil

import pytest

import algoperf_reinit.submission as package

MODULES = sorted(m.name for m in pkgutil.iter_modules(package.__path__, f"{package.__name__}."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

"""The examples in the docstrings of the schedule modules run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "algoperf_reinit.schedules._compat",
    "algoperf_reinit.schedules._config",
    "algoperf_reinit.schedules._decays",
    "algoperf_reinit.schedules._describe",
    "algoperf_reinit.schedules._host",
    "algoperf_reinit.schedules._plan",
    "algoperf_reinit.schedules._scale",
    "algoperf_reinit.schedules._seed",
    "algoperf_reinit.schedules._shapes",
    "algoperf_reinit.schedules._table",
    "algoperf_reinit.reinit._redistribute",
    "algoperf_reinit.optim",
    "algoperf_reinit.plotting",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

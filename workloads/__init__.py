"""Bundled AlgoPerf-style workloads, installed as ``algoperf_reinit_workloads``.

Each workload implements the part of AlgoPerf v0.6's JAX ``Workload`` interface
that submissions and runners use, with data that ships inside installed packages
(nothing is downloaded):

* :class:`DigitsWorkload` (``'digits'``): an MLP with batch norm on
  scikit-learn's 8x8 digits; target ``validation/accuracy >= 0.97``.
* :class:`StdlibLMWorkload` (``'stdlib_lm'``): a byte-level decoder-only
  transformer on the Python standard library's own source files; target
  ``validation/loss <=`` the value in its docstring.
* :class:`StdlibLM4x256Workload` (``'stdlib_lm_4x256'``): the same with 4 layers over
  256-byte sequences (for random-LTD).

``WORKLOADS`` maps names to classes; :func:`get_workload` builds one by name.
"""

from __future__ import annotations

import types
from typing import Any

from algoperf_reinit_workloads import _validation, spec
from algoperf_reinit_workloads.base import BaseWorkload, infer_param_types, param_shapes_of
from algoperf_reinit_workloads.digits import DigitsWorkload
from algoperf_reinit_workloads.spec import (
    ForwardPassMode,
    LossType,
    ParameterType,
    ShapeTuple,
    TrainingCompleteError,
)
from algoperf_reinit_workloads.stdlib_lm import StdlibLM4x256Workload, StdlibLMWorkload

__all__ = [
    "WORKLOADS",
    "BaseWorkload",
    "DigitsWorkload",
    "ForwardPassMode",
    "LossType",
    "ParameterType",
    "ShapeTuple",
    "StdlibLM4x256Workload",
    "StdlibLMWorkload",
    "TrainingCompleteError",
    "get_workload",
    "infer_param_types",
    "param_shapes_of",
    "spec",
]

WORKLOADS: types.MappingProxyType[str, type[BaseWorkload]] = types.MappingProxyType(
    {"digits": DigitsWorkload, "stdlib_lm": StdlibLMWorkload,
     "stdlib_lm_4x256": StdlibLM4x256Workload}
)


def get_workload(name: str, **kwargs: Any) -> BaseWorkload:
    """Builds the workload called ``name`` with constructor arguments ``kwargs``.

    Raises:
      ValueError: for an unknown name (the message lists the valid ones).
      TypeError: for a name that is not a string.
    """
    return WORKLOADS[_validation.choice("name", name, sorted(WORKLOADS))](**kwargs)

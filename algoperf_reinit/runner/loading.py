"""Loading what a run needs: the workload, the submission module and its batch sizes.

A submission is a Python file (``--submission_path=path/to/submission.py``,
relative to the working directory or absolute) imported with
``importlib.util.spec_from_file_location``, or a dotted module path
(``submissions.nadamw_reinit.submission``) imported with
``importlib.import_module``, as AlgoPerf's runner does. Besides AlgoPerf's
functions, a submission may declare the files it writes through
``run_protocol``'s artefact hook (see :mod:`~algoperf_reinit.runner.artifacts`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pathlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from algoperf_reinit import _validation as v
from algoperf_reinit.run_protocol import SAMPLE_SOURCE_HOOK, RunArtifact
from algoperf_reinit.runner.artifacts import load_artifacts
from algoperf_reinit.runner.faults import SubmissionFault

__all__ = [
    "OPTIONAL_FUNCTIONS",
    "REQUIRED_FUNCTIONS",
    "Submission",
    "base_workload_name",
    "load_submission",
    "load_workload",
    "resolve_batch_size",
]

REQUIRED_FUNCTIONS = ("get_batch_size", "init_optimizer_state", "update_params", "data_selection")
OPTIONAL_FUNCTIONS = ("prepare_for_eval", "get_eval_batch_size")
UPDATE_PARAMS_KEYWORDS = (
    "workload", "current_param_container", "current_params_types", "model_state",
    "hyperparameters", "batch", "loss_type", "optimizer_state", "eval_results", "global_step",
    "rng")
"""The keyword arguments AlgoPerf v0.6 passes to ``update_params`` (plus ``train_state``
if the signature names it)."""
PREPARE_FOR_EVAL_KEYWORDS = (
    "workload", "current_param_container", "current_params_types", "model_state",
    "hyperparameters", "loss_type", "optimizer_state", "eval_results", "global_step", "rng")
"""The keyword arguments AlgoPerf v0.6 passes to ``prepare_for_eval``."""
DATA_SELECTION_ARGUMENTS = 8
"""``data_selection`` is called positionally with 8 arguments (workload, input_queue,
optimizer_state, current_param_container, model_state, hyperparameters, global_step,
rng)."""


class Submission(NamedTuple):
    """A loaded submission module and its API functions.

    Attributes:
      module: the imported module.
      path: what ``--submission_path`` named (file path or dotted module path).
      get_batch_size, init_optimizer_state, update_params, data_selection: required.
      prepare_for_eval, get_eval_batch_size: optional (``None`` if absent).
      update_params_takes_train_state: whether ``update_params``' signature names
        ``train_state`` (AlgoPerf passes it only then).
      artifacts: the files the submission declares through ``run_artifacts()``
        (``()`` without the hook).
      sample_source: the submission's
        ``sample_source(workload, global_batch_size, data_rng)`` hook
        (``run_protocol``), or ``None``: train on the workload's input queue.
    """

    module: types.ModuleType
    path: str
    get_batch_size: Callable[..., Any]
    init_optimizer_state: Callable[..., Any]
    update_params: Callable[..., Any]
    data_selection: Callable[..., Any]
    prepare_for_eval: Callable[..., Any] | None
    get_eval_batch_size: Callable[..., Any] | None
    update_params_takes_train_state: bool
    artifacts: tuple[RunArtifact, ...] = ()
    sample_source: Callable[..., Any] | None = None


def load_workload(name: str, kwargs: Mapping[str, Any] | None = None) -> Any:
    """Builds a bundled workload by name.

    Raises:
      ValueError: for an unknown name (listing the valid ones) or bad ``kwargs``.
      TypeError: for a name that is not a string.
    """
    from algoperf_reinit_workloads import WORKLOADS, get_workload

    v.choice("--workload", name, sorted(WORKLOADS))
    try:
        return get_workload(name, **dict(kwargs or {}))
    except TypeError as e:
        raise ValueError(f"--workload_kwargs {dict(kwargs or {})!r} do not fit workload "
                         f"{name!r}: {e}") from None


def base_workload_name(full_name: str, workload: Any = None) -> str:
    """The base workload of a variant (``'ogbg_gelu'`` → ``'ogbg'``).

    The workload object's ``name`` attribute if it differs from ``full_name`` (our
    workloads carry their base name), else the longest registered workload name
    that ``full_name`` extends with ``_<variant>``, else ``full_name``.
    """
    name = getattr(workload, "name", None)
    if isinstance(name, str) and name and name != full_name:
        return name
    from algoperf_reinit_workloads import WORKLOADS

    bases = [b for b in WORKLOADS if full_name.startswith(b + "_")]
    return max(bases, key=len) if bases else full_name


def _import_file(path: pathlib.Path) -> types.ModuleType:
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_algoperf_reinit_submission_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import submission file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        del sys.modules[module_name]
        if isinstance(e, Exception):  # a fault in the user's file: keep its traceback
            raise SubmissionFault(f"import of {str(path)!r}") from e
        raise
    return module


def _looks_like_module_path(text: str) -> bool:
    return not text.endswith(".py") and all(p.isidentifier() for p in text.split("."))


def _import_submission(path: str) -> types.ModuleType:
    file = pathlib.Path(path)
    if file.is_file():
        return _import_file(file)
    if file.is_dir():
        found = file / "submission.py"
        fix = (f"did you mean {str(found)!r}?" if found.is_file()
               else "pass the submission's .py file inside it")
        raise v.value_error("--submission_path", path, "a submission .py file, not a directory",
                            fix=fix)
    if not _looks_like_module_path(path):
        raise ValueError(f"submission file {path!r} not found (resolved to "
                         f"{str(file.resolve())!r}); pass --submission_path=path/to/"
                         "submission.py, relative to the working directory or absolute "
                         "(the bundled submissions are in submissions/ at the root of the "
                         "repository: run from there)")
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name is None or not path.startswith(e.name):
            raise
        raise ValueError(f"submission module {path!r} not found ({e}); pass a file path "
                         "(--submission_path=path/to/submission.py) or a module "
                         "importable from the working directory") from None


def load_submission(path: str) -> Submission:
    """Imports a submission from a file path or a dotted module path and checks its API.

    Args:
      path: ``path/to/submission.py`` (relative to the working directory or
        absolute) or ``package.module``.

    Returns:
      The :class:`Submission`.

    Raises:
      ValueError: if the file or module does not exist, or required functions are
        missing (all missing names are listed).
      TypeError: if an optional function, the artefact hook or the sample-source
        hook is not callable, or the artefact hook returns something else than ``RunArtifact`` entries.
    """
    module = _import_submission(path)
    missing = [n for n in REQUIRED_FUNCTIONS if not callable(getattr(module, n, None))]
    if missing:
        raise ValueError(f"submission {path!r} does not define the required function(s) "
                         f"{missing}; an AlgoPerf v0.6 submission defines "
                         f"{list(REQUIRED_FUNCTIONS)} (optional: {list(OPTIONAL_FUNCTIONS)})")
    update_params = module.update_params
    takes_train_state = _check_signatures(module, path)
    optional = {}
    for name in OPTIONAL_FUNCTIONS:
        fn = getattr(module, name, None)
        if fn is not None and not callable(fn):
            raise v.type_error(f"submission {path!r}: {name}", fn, "a function or absent")
        optional[name] = fn
    source = getattr(module, SAMPLE_SOURCE_HOOK, None)
    if source is not None and not callable(source):
        raise v.type_error(f"submission {path!r}: {SAMPLE_SOURCE_HOOK}", source,
                           "a function (workload, global_batch_size, data_rng) -> "
                           "SampleSource, or absent")
    return Submission(
        module=module,
        path=path,
        get_batch_size=module.get_batch_size,
        init_optimizer_state=module.init_optimizer_state,
        update_params=update_params,
        data_selection=module.data_selection,
        prepare_for_eval=optional["prepare_for_eval"],
        get_eval_batch_size=optional["get_eval_batch_size"],
        update_params_takes_train_state=takes_train_state,
        artifacts=load_artifacts(module, path),
        sample_source=source,
    )


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function: cannot be checked
        return None


def _check_call(path: str, name: str, fn: Callable[..., Any], *, keywords: tuple[str, ...] = (),
                positional: int = 0) -> inspect.Signature | None:
    """Raises unless ``fn`` accepts the arguments AlgoPerf passes it."""
    sig = _signature(fn)
    if sig is None:
        return None
    try:
        sig.bind(*([None] * positional), **dict.fromkeys(keywords))
    except TypeError as e:
        called = (f"the keyword arguments {', '.join(keywords)}" if keywords
                  else f"{positional} positional arguments")
        raise TypeError(v.message(f"submission {path!r}: {name}", f"{name}{sig}",
                                  f"a function AlgoPerf can call with {called}",
                                  fix=str(e))) from None
    return sig


def _check_signatures(module: types.ModuleType, path: str) -> bool:
    """Checks the signatures AlgoPerf calls; returns whether ``update_params`` takes
    ``train_state``."""
    sig = _signature(module.update_params)
    takes_train_state = sig is not None and "train_state" in sig.parameters
    _check_call(path, "update_params", module.update_params, keywords=(
        *UPDATE_PARAMS_KEYWORDS, *(("train_state",) if takes_train_state else ())))
    _check_call(path, "data_selection", module.data_selection,
                positional=DATA_SELECTION_ARGUMENTS)
    prepare = getattr(module, "prepare_for_eval", None)
    if callable(prepare):
        _check_call(path, "prepare_for_eval", prepare, keywords=PREPARE_FOR_EVAL_KEYWORDS)
    return takes_train_state


def _check_batch_size(value: Any, what: str, num_devices: int) -> int:
    value = v.integer(what, value, minimum=1)
    if value % num_devices:
        raise ValueError(f"{what} returned {value}, which is not divisible by the "
                         f"{num_devices} local devices (jax.local_device_count()); every "
                         "device gets an equal slice of the global batch")
    return value


def resolve_batch_size(
    fn: Callable[[str], Any],
    full_name: str,
    base_name: str,
    *,
    what: str = "get_batch_size",
    num_devices: int | None = None,
) -> int:
    """Calls ``fn(full_name)``; only on ``ValueError`` retries with ``base_name`` (AlgoPerf).

    Args:
      fn: the submission's ``get_batch_size`` (or ``get_eval_batch_size``).
      full_name: the workload name as given to the runner.
      base_name: its base workload name.
      what: the function's name, for messages.
      num_devices: device count the size must divide; ``jax.local_device_count()``
        by default.

    Returns:
      The global batch size.

    Raises:
      ValueError: if both calls raise ``ValueError`` (chained), or the size is not
        positive or not divisible by the device count. Other exceptions propagate.
      TypeError: if the size is not an int.
    """
    num_devices = jax.local_device_count() if num_devices is None else num_devices
    try:
        value, name = fn(full_name), full_name
    except ValueError as first:
        if base_name == full_name:
            raise ValueError(f"{what}({full_name!r}) raised ValueError: {first}") from first
        try:
            value, name = fn(base_name), base_name
        except ValueError as second:
            raise ValueError(f"{what} raised ValueError for {full_name!r} ({first}) and for "
                             f"its base workload {base_name!r} ({second})") from second
    return _check_batch_size(value, f"{what}({name!r})", num_devices)

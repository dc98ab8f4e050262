"""The curriculum sampler's checkpoint: DeepSpeed's keys, JSON-serialisable, checked.

:func:`encode_state` builds the dict :meth:`DeepSpeedDataSampler.state_dict` returns,
with DeepSpeed's keys (spec §3.8) and our fix of its resume bug (#8405):

=================================  ==================================================
key                                value
=================================  ==================================================
``batch``                          ids of the current global batch not yet yielded
``consumed_samples``               ids yielded so far (all ranks; see the sampler)
``curriculum_step``                global batches drawn (the last scheduler step)
``current_difficulties``           metric name -> difficulty, config order
``data_cluster_paths``             cluster file names (basenames), creation order
``data_cluster_current_position``  each cluster's cursor
``np_rng_state``                   the sampler's own ``Generator.bit_generator.state``
``data_cluster_crc32``             ours: CRC-32 of each cluster's ids (its ``.bin``)
=================================  ==================================================

DeepSpeed saves ``np.random.get_state()`` under ``np_rng_state``: the process-wide
legacy RNG, which its sampler never uses, so a resumed stream restarts from the seed.
We save the sampler's PCG64 state, its two 128-bit integers written as decimal strings
(every JSON reader keeps them exact); integers are accepted on load as well.
:func:`decode_rng` returns ``None`` for anything that is not a PCG64 state (such as the
legacy tuple of a DeepSpeed checkpoint): the sampler then reconstructs its state by
replaying the stream from the seed. The CRC-32s let a restore detect cluster files
rewritten after the checkpoint was taken (a later reshuffle); DeepSpeed would silently
read them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_common import MISSING

__all__ = ["STATE_KEYS", "SamplerState", "decode_rng", "decode_state", "encode_rng",
           "encode_state"]

STATE_KEYS = ("batch", "consumed_samples", "curriculum_step", "current_difficulties",
              "data_cluster_paths", "data_cluster_current_position", "np_rng_state")
"""DeepSpeed's keys (``CURRICULUM_LEARNING_*`` constants), all required on load."""
CRC_KEY = "data_cluster_crc32"


class SamplerState(NamedTuple):
    """A decoded, checked :func:`encode_state` dict."""

    batch: np.ndarray  # shape=(remaining,), dtype=int64
    consumed_samples: int
    curriculum_step: int
    current_difficulties: dict[str, int | float]
    data_cluster_paths: list[str]  # basenames
    data_cluster_current_position: list[int]
    rng_state: dict[str, Any] | None  # a PCG64 state, or None: not one
    crc32: list[int] | None  # None: not saved (a DeepSpeed checkpoint)


def encode_rng(state: Mapping[str, Any]) -> dict[str, Any]:
    """A ``bit_generator.state`` dict with its big integers as decimal strings."""
    inner = state["state"]
    return {"bit_generator": state["bit_generator"],
            "state": {k: str(int(v)) for k, v in inner.items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def _big_int(field: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise _validation.type_error(field, value, "an integer (or its decimal string)")


def decode_rng(value: Any) -> dict[str, Any] | None:
    """The PCG64 state of :func:`encode_rng` (or of ``bit_generator.state``), else ``None``.

    Raises:
      TypeError, ValueError: for a PCG64 dict with malformed fields.
    """
    if not (isinstance(value, Mapping) and value.get("bit_generator") == "PCG64"):
        return None
    field = "state_dict['np_rng_state']"
    inner = value.get("state")
    if not isinstance(inner, Mapping) or set(inner) != {"state", "inc"}:
        raise _validation.value_error(f"{field}['state']", inner,
                                      "a dict with the keys 'state' and 'inc'")
    state = {"bit_generator": "PCG64",
             "state": {k: _big_int(f"{field}['state'][{k!r}]", inner[k]) for k in inner},
             "has_uint32": _big_int(f"{field}['has_uint32']", value.get("has_uint32", 0)),
             "uinteger": _big_int(f"{field}['uinteger']", value.get("uinteger", 0))}
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError) as err:
        raise _validation.value_error(field, value, "a valid PCG64 state") from err
    return state


def encode_state(s: SamplerState) -> dict[str, Any]:
    """The JSON-serialisable checkpoint dict of a :class:`SamplerState`."""
    out = {"batch": np.asarray(s.batch, np.int64).tolist(),
           "consumed_samples": s.consumed_samples,
           "curriculum_step": s.curriculum_step,
           "current_difficulties": dict(s.current_difficulties),
           "data_cluster_paths": list(s.data_cluster_paths),
           "data_cluster_current_position": list(s.data_cluster_current_position),
           "np_rng_state": encode_rng(s.rng_state)}
    if s.crc32 is not None:
        out[CRC_KEY] = list(s.crc32)
    return out


def _int_list(field: str, value: Any, minimum: int = 0, maximum: int | None = None
              ) -> list[int]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _validation.type_error(field, value, "a list of ints")
    return [_validation.integer(f"{field}[{i}]", v, minimum=minimum, maximum=maximum)
            for i, v in enumerate(value)]


def _names(field: str, value: Any) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _validation.type_error(field, value, "a list of cluster file names")
    out = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise _validation.type_error(f"{field}[{i}]", name, "a cluster file name")
        # DeepSpeed once saved absolute paths; only the basename is kept (as it does).
        out.append(name.replace("\\", "/").rsplit("/", 1)[-1])
    return out


def _difficulties(field: str, value: Any, metric_names: Sequence[str]
                  ) -> dict[str, int | float]:
    if not isinstance(value, Mapping):
        raise _validation.type_error(field, value, "a dict of metric name -> difficulty")
    if value and set(value) != set(metric_names):
        raise _validation.value_error(
            field, dict(value), f"keyed by this configuration's metrics {list(metric_names)}",
            fix="the checkpoint belongs to another curriculum configuration")
    out: dict[str, int | float] = {}
    for name in metric_names if value else ():  # config order (cluster names follow it)
        d = value[name]
        if isinstance(d, numbers.Integral) and not isinstance(d, bool):
            out[name] = int(d)
        else:
            out[name] = _validation.real(f"{field}[{name!r}]", d)
    return out


def decode_state(state: Any, *, metric_names: Sequence[str], num_samples: int
                 ) -> SamplerState:
    """Check a checkpoint dict (ours or DeepSpeed's) and decode it.

    Raises:
      TypeError, ValueError: naming the offending key.
    """
    if not isinstance(state, Mapping):
        raise _validation.type_error("state_dict", state, "a dict from state_dict()")
    for key in STATE_KEYS:
        if key not in state:
            raise _validation.value_error(f"state_dict[{key!r}]", MISSING,
                                          "given (one of DeepSpeed's sampler state keys)")
    f = "state_dict[{!r}]".format
    names = _names(f("data_cluster_paths"), state["data_cluster_paths"])
    positions = _int_list(f("data_cluster_current_position"),
                          state["data_cluster_current_position"])
    if len(positions) != len(names):
        raise _validation.value_error(f("data_cluster_current_position"), positions,
                                      f"one cursor per cluster ({len(names)})")
    crc = state.get(CRC_KEY)
    if crc is not None:
        crc = _int_list(f(CRC_KEY), crc, maximum=2**32 - 1)
        if len(crc) != len(names):
            raise _validation.value_error(f(CRC_KEY), crc, f"one CRC per cluster ({len(names)})")
    step = _validation.integer(f("curriculum_step"), state["curriculum_step"], minimum=0)
    current = _difficulties(f("current_difficulties"), state["current_difficulties"],
                            metric_names)
    if bool(current) != (step > 0):
        raise _validation.value_error(f("current_difficulties"), current,
                                      "empty exactly when curriculum_step is 0")
    batch = _int_list(f("batch"), state["batch"], maximum=num_samples - 1)
    return SamplerState(
        batch=np.asarray(batch, np.int64),
        consumed_samples=_validation.integer(f("consumed_samples"),
                                             state["consumed_samples"], minimum=0),
        curriculum_step=step, current_difficulties=current, data_cluster_paths=names,
        data_cluster_current_position=positions, rng_state=decode_rng(state["np_rng_state"]),
        crc32=crc)

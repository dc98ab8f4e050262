"""Performance profiles (AlgoPerf's scoring) and the study's pictures.

A performance profile (Dolan & Moré, as AlgoPerf scores submissions): for arm ``s``
on workload ``w`` the ratio ``r = t[s, w] / min over arms t[·, w]``; the profile
``ρ_s(τ)`` is the fraction of workloads with ``r <= τ``. A workload that no arm
solves gives every arm ``r = ∞`` there (so no arm is credited with it).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

TAUS = np.linspace(1.0, 4.0, 301)
"""τ from 1 to 4, as in the issue (AlgoPerf's own profiles also stop at 4)."""


def performance_ratios(scores: Mapping[tuple[str, str], float]
                       ) -> dict[tuple[str, str], float]:
    """``(workload, arm)`` → score over the best arm's score on that workload."""
    best: dict[str, float] = {}
    for (workload, _), value in scores.items():
        best[workload] = min(best.get(workload, math.inf), value)
    return {(w, a): (math.inf if math.isinf(best[w]) or math.isinf(v) else v / best[w])
            for (w, a), v in scores.items()}


def performance_profile(scores: Mapping[tuple[str, str], float],
                        taus: Sequence[float] = TAUS) -> dict[str, np.ndarray]:
    """Arm → ``ρ(τ)`` for each τ, over the workloads in ``scores``.

    Only workloads on which every arm ran count (an arm that does not apply to a
    workload would otherwise be scored on fewer workloads than the others).
    """
    r = performance_ratios(scores)
    arms = sorted({a for _, a in scores})
    workloads = sorted({w for w, _ in scores if all((w, a) in scores for a in arms)})
    taus = np.asarray(taus, dtype=float)
    if not workloads:
        return {a: np.zeros_like(taus) for a in arms}
    return {a: np.array([sum(r[w, a] <= t for w in workloads) / len(workloads)
                         for t in taus]) for a in arms}


def plot_profile(profile: Mapping[str, np.ndarray], path: pathlib.Path, *,
                 title: str, taus: Sequence[float] = TAUS) -> pathlib.Path:
    """Draws ``ρ_s(τ)`` of every arm to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for arm, values in sorted(profile.items()):
        ax.step(taus, values, where="post", label=arm, linewidth=1.6)
    ax.set(xlabel="τ (time to target over the fastest arm's)",
           ylabel="fraction of workloads within τ", xlim=(1, max(taus)), ylim=(-0.03, 1.03),
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _best_trial(trials: Sequence[Mapping[str, Any]],
                time_of: Callable[[Mapping[str, Any]], float] | None = None
                ) -> Mapping[str, Any]:
    """The trial that set a study's score (the best final metric if none reached)."""
    reached = [t for t in trials if t["reached"]]
    if reached:
        return min(reached, key=time_of or (lambda t: t["time_to_target_sec"]))
    sign = 1.0 if trials[0]["lower_is_better"] else -1.0
    return min(trials, key=lambda t: sign * (t["final_metric"] if t["final_metric"]
                                             is not None else math.inf * sign))


def plot_curves(results: Sequence[Mapping[str, Any]], workload: str,
                path: pathlib.Path, *, title: str,
                x_of: Callable[[Mapping[str, Any], np.ndarray], np.ndarray] | None = None,
                time_of: Callable[[Mapping[str, Any]], float] | None = None,
                x_label: str = "submission time [s] (evals not counted)") -> pathlib.Path:
    """Validation metric versus submission time: each study's deciding trial, per arm.

    ``x_of(result, steps)`` gives the x of each eval and ``time_of(result)`` a trial's
    time to target, which decides the study (default for both: measured times).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r["workload"] == workload]
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, arm in enumerate(sorted({r["arm"] for r in rows})):
        studies = sorted({r["study"] for r in rows if r["arm"] == arm})
        for j, study in enumerate(studies):
            best = _best_trial([r for r in rows if r["arm"] == arm and r["study"] == study],
                               time_of)
            curve = np.asarray(best["curve"], dtype=float)
            if curve.size:
                x = curve[:, 1] if x_of is None else x_of(best, curve[:, 0])
                ax.plot(x, curve[:, 2], color=colors[i % len(colors)], linewidth=1.4,
                        alpha=0.9 if j == 0 else 0.55, label=arm if j == 0 else None)
    if rows:
        ax.axhline(rows[0]["target_value"], color="black", linestyle="--", linewidth=1,
                   label="target")
        ax.set_ylabel(rows[0]["target_metric"])
        if rows[0]["lower_is_better"]:
            finite = [c[2] for r in rows for c in r["curve"] if math.isfinite(c[2])]
            if finite:
                ax.set_ylim(min(finite) - 0.05 * abs(min(finite)),
                            min(max(finite), 3 * rows[0]["target_value"]))
    ax.set(xlabel=x_label, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

"""The v0.6 API of a submission with a sequence-length curriculum in ``data_selection``.

:func:`curriculum_submission_api` wraps :func:`~._submission.submission_api`: the same
optimizer and train step, plus a
:class:`~algoperf_reinit.data_efficiency.SeqlenSelection` that

* starts a fresh curriculum per trial in ``init_optimizer_state`` (its report goes to
  the trial directory);
* cuts each batch in ``data_selection`` (from the batch alone; other batches pass);
* after each ``update_params``, attributes the train step's new compilations to the
  length of the batch it ran on;
* rewrites the report (``seqlen_curriculum.json``: steps, compilations and tokens per
  length) on each new compilation and in ``prepare_for_eval``.
"""

from __future__ import annotations

from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import SEQLEN_REPORT_FILE, SeqlenSelection
from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.submission._submission import (
    CycleSubmission,
    SubmissionAPI,
    SubmissionConfig,
    submission_api,
)

__all__ = ["curriculum_submission_api"]


def curriculum_submission_api(submission: CycleSubmission | SubmissionConfig,
                              selection: SeqlenSelection, run_dir: Any = None
                              ) -> SubmissionAPI:
    """Module-level API functions: ``submission``'s, with ``selection`` in ``data_selection``.

    Args:
      submission: the submission, or its configuration.
      selection: the curriculum (built, so validated, when the file is imported).
      run_dir: ``run_dir(workload, hyperparameters, rng) -> path or None`` (as for
        :func:`submission_api`).

    Returns:
      The six functions (``run_artifacts`` adds the curriculum's report).

    Raises:
      TypeError: for a ``selection`` that is not a SeqlenSelection.
    """
    _validation.instance("selection", selection, SeqlenSelection)
    base = submission_api(submission, run_dir)

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        selection.start(run_dir(workload, hyperparameters, rng) if run_dir is not None
                        else None)
        return base.init_optimizer_state(workload, model_params, model_state,
                                         hyperparameters, rng)

    def update_params(workload, current_param_container, current_params_types, model_state,
                      hyperparameters, batch, loss_type, optimizer_state, eval_results,
                      global_step, rng, train_state=None):
        out = base.update_params(workload, current_param_container, current_params_types,
                                 model_state, hyperparameters, batch, loss_type,
                                 optimizer_state, eval_results, global_step, rng,
                                 train_state)
        selection.observe(out[0][1].train_step)
        return out

    def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                         hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                         rng):
        selection.write_report()
        return base.prepare_for_eval(workload, current_param_container, current_params_types,
                                     model_state, hyperparameters, loss_type, optimizer_state,
                                     eval_results, global_step, rng)

    def data_selection(workload, input_queue, optimizer_state, current_param_container,
                       model_state, hyperparameters, global_step, rng):
        del workload, optimizer_state, current_param_container, model_state
        del hyperparameters, rng
        return selection.select(input_queue, global_step)

    def run_artifacts():
        return (*base.run_artifacts(), RunArtifact(SEQLEN_REPORT_FILE),
                RunArtifact(f"{SEQLEN_REPORT_FILE}.tmp"))

    return SubmissionAPI(base.get_batch_size, init_optimizer_state, update_params,
                         prepare_for_eval, data_selection, run_artifacts)

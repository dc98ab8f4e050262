"""The process layout of a multi-process run: flags, then our environment variables."""

import numpy as np
import pytest

from algoperf_reinit.runner import ENV_VARS, Distributed
from algoperf_reinit.runner.distributed import agree, agree_int, is_writer, resolve
from algoperf_reinit.runner.flags import parse_flags


def layout(argv, environ=None):
    return resolve(parse_flags(["--workload=digits", *argv]), environ or {})


def test_one_process_by_default_and_process_0_writes():
    assert layout([]) == Distributed(None, 1, 0)
    assert is_writer() and agree(True) and not agree(False) and agree_int(7) == 7


def test_flags_and_environment_variables():
    argv = ["--coordinator_address=10.0.0.1:1234", "--num_processes=2", "--process_id=1",
            "--eval_every_steps=10"]
    assert layout(argv) == Distributed("10.0.0.1:1234", 2, 1)
    environ = {ENV_VARS["coordinator_address"]: "h0:99", ENV_VARS["num_processes"]: "4",
               ENV_VARS["process_id"]: "3"}
    assert layout(["--eval_every_steps=5"], environ) == Distributed("h0:99", 4, 3)
    assert layout(["--eval_every_steps=5", "--process_id=0"], environ) == Distributed(
        "h0:99", 4, 0)  # a flag wins over its variable
    assert ENV_VARS == {"coordinator_address": "ALGOPERF_REINIT_COORDINATOR",
                        "num_processes": "ALGOPERF_REINIT_NUM_PROCESSES",
                        "process_id": "ALGOPERF_REINIT_PROCESS_ID"}


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["--num_processes=2", "--process_id=2", "--coordinator_address=h:1",
      "--eval_every_steps=1"], {}, r"--process_id must be an int in \[0, 1\], got 2"),
    (["--num_processes=2", "--process_id=0", "--eval_every_steps=1"], {},
     "--coordinator_address must be host:port of process 0, got None; needed with "
     "--num_processes=2 .or set ALGOPERF_REINIT_COORDINATOR."),
    (["--num_processes=2", "--process_id=0", "--coordinator_address=h:1"], {},
     "--eval_every_steps must be set for a multi-process run, got None; evals by wall time "
     "would differ between processes"),
    ([], {"ALGOPERF_REINIT_NUM_PROCESSES": "two"},
     "ALGOPERF_REINIT_NUM_PROCESSES must be an int, got 'two'"),
    (["--num_processes=0"], {}, "--num_processes must be an int >= 1, got 0"),
])
def test_bad_layouts_are_named(argv, environ, message):
    with pytest.raises(ValueError, match=message):
        layout(argv, environ)


def test_one_process_holds_every_row_of_the_batch():
    from algoperf_reinit_workloads import sharding

    mesh = sharding.batch_mesh()
    assert sharding.local_rows(16, mesh) == slice(0, 16)
    out = sharding.shard_local_batch({"x": np.arange(16.0)}, mesh, 16)
    np.testing.assert_array_equal(np.asarray(out["x"]), np.arange(16.0))

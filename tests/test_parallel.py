"""Independent jobs over processes: same results, same order, whatever the number of workers."""

import pytest

from fa_lib import parallel
from fa_lib.theory import song
from fa_lib.training.two_layer import cache_block


def test_jobs_give_the_same_results_in_order_with_any_number_of_workers():
    jobs = [(song.steps_for_width, {"p": p}) for p in (3200, 200, 800)] + [(cache_block, {"p": 800})]
    alone = parallel.run_parallel(jobs, workers=1, progress=False)
    assert alone == [20203, 5050, 10101, 6]
    assert parallel.run_parallel(jobs, workers=2, progress=False) == alone


def test_a_failing_job_raises_its_error():
    with pytest.raises(ValueError, match="p=0"):
        parallel.run_parallel([(song.steps_for_width, {"p": 0}), (song.steps_for_width, {"p": 200})], workers=2, progress=False)


def test_workers_are_checked():
    assert parallel.resolve_workers(0) == parallel.available_cores() >= 1
    assert parallel.resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers=-1"):
        parallel.resolve_workers(-1)

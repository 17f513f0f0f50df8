"""cvbench's own process: imports made with the collector off, then frozen; a call from
Python (tests, notebooks) keeps the collector as it was."""

import gc

from bench.cli import uncollected


def test_in_cvbench_own_process_imports_are_frozen_and_the_collector_is_back_on():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:
        with uncollected(True):
            assert not gc.isenabled()
            made = [[n] for n in range(1000)]  # tracked objects, as imports make
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()


def test_called_from_python_nothing_changes():
    with uncollected(False):
        assert gc.isenabled()
        made = [[n] for n in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() == 0 and len(made) == 1000

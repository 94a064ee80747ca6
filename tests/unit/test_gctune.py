"""The garbage-collector tuning of sending processes."""

import gc

import pytest

from ingestload import gctune


@pytest.fixture(autouse=True)
def _restore_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tune_freezes_the_heap_and_raises_generation_0():
    gctune.tune(50_000)
    assert gc.get_threshold()[0] == 50_000
    assert gc.get_threshold()[1:] == gctune._PYTHON_DEFAULT[1:]
    assert gc.get_freeze_count() > 0


def test_zero_gives_python_its_own_thresholds_back():
    gctune.tune(50_000)
    gctune.tune(0)
    assert gc.get_threshold() == gctune._PYTHON_DEFAULT

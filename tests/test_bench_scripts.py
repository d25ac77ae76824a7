"""Every benchmark in bench/ still loads against the code it measures (a renamed helper must not
leave a bench broken until someone next runs it: the benches run for minutes, the suite does not)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCHES = sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py"))


def test_there_are_benches():
    assert len(BENCHES) >= 5


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.stem)
def test_bench_loads(path: Path):
    namespace = runpy.run_path(str(path), run_name="bench_import_check")  # its imports and definitions, not main()
    assert callable(namespace.get("main")), f"{path.name} has no main()"

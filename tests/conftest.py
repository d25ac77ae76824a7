from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"


@pytest.fixture
def testdata() -> Path:
    """../shared/testdata beside the checkout; tests that need it skip with a reason when absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"third-party test data not found at {TESTDATA} (expected ../shared/testdata beside the checkout)")
    return TESTDATA


@pytest.fixture
def kiln_env(tmp_path, monkeypatch) -> Path:
    """A fresh KILN_DATA_DIR (with concepts/, store/, exports/ inside) for one test."""
    data = tmp_path / "kiln-data"
    (data / "concepts").mkdir(parents=True)
    monkeypatch.setenv("KILN_DATA_DIR", str(data))
    for var in ("KILN_STORE_URI", "KILN_EXPORT_URI"):
        monkeypatch.delenv(var, raising=False)
    return data


pytest_plugins = ["tests.s3server", "tests.pgserver", "tests.redisserver"]

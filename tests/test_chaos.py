"""The short fault campaign inside `make test` (the long one is `make chaos`; see tests/chaos.py)."""

from __future__ import annotations

import logging
from collections import Counter

from tests import chaos


def test_a_short_fault_campaign_never_pays_twice_and_every_asset_ends_with_a_model(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="pipeline.providers")
    report = chaos.campaign(assets=12, seed=3, faults_per_asset=8, workdir=tmp_path)
    assert chaos.check(report) == []  # paid submissions, spend recorded == charged, a model for every asset
    injected: Counter = report["injected"]
    assert sum(injected.values()) >= 60
    assert set(chaos.KILLS) <= set(injected)  # real run processes were killed mid-submit, -poll, -download
    assert {"429 with Retry-After", "vendor restart", "wrong-content download"} <= set(injected)
    billed = [r for r in report["results"] if chaos.VENDORS[r.provider].billed]
    assert all(r.paid >= 1 for r in billed) and report["charged"] > 0
    print(chaos.table(report))

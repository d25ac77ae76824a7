"""`python -m pipeline.cli register`: every concept folder becomes a partition, nothing runs."""

from __future__ import annotations

import dagster as dg

from pipeline import cli
from tests.test_partition_lifecycle import make_folder


def test_register_adds_partitions_runs_nothing_and_says_what_it_skipped(kiln_env, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for i in range(3):
        make_folder(kiln_env, f"prop_{i}", color=(40 * i, 90, 40))
    (kiln_env / "concepts" / "Bad Name").mkdir()
    (kiln_env / "concepts" / "empty").mkdir()
    with dg.DagsterInstance.from_config(str(cli.ensure_dagster_home())) as instance:
        instance.add_dynamic_partitions("game_assets", ["prop_0", "gone"])

    assert cli.main(["register"]) == 0
    out = capsys.readouterr().out
    assert "skipped Bad Name: " in out and "not a valid asset id" in out and "skipped empty: " in out
    assert "registered 2 new partition(s), 1 already registered, 2 folder(s) skipped" in out
    assert "1 registered partition(s) have no folder" in out and "gone" in out
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert sorted(instance.get_dynamic_partitions("game_assets")) == ["gone", "prop_0", "prop_1", "prop_2"]
        assert instance.get_runs_count() == 0

    assert cli.main(["register"]) == 0  # again: nothing new
    assert "registered 0 new partition(s), 3 already registered" in capsys.readouterr().out


def test_progress_reports_done_total_rate_and_time_left(capsys):
    now = [0.0]
    progress = cli.Progress("scanned folders", every_s=2.0, clock=lambda: now[0])
    progress(1, 1000)  # a job shorter than the interval stays quiet
    now[0] = 1.0
    progress(100, 1000)
    now[0] = 2.5
    progress(250, 1000)  # 100/s: 7.5 s left
    now[0] = 3.0
    progress(300, 1000)  # within the interval of the last line: quiet
    now[0] = 250.0
    progress(1000, 1000)  # the last one always
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["scanned folders 250/1000 (100/s, 8s left)", "scanned folders 1000/1000 (4/s, 0s left)"]
    assert cli._duration(4000) == "1h06m" and cli._duration(75) == "1m15s"

"""The backfill bench's pure arithmetic (pool time full, jobs at once, process trees) and the
emulators' vendor latency it relies on. The bench itself is `make bench-backfill`, not a test."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from tests.emulators import Hunyuan3DEmulator

_spec = importlib.util.spec_from_file_location(
    "backfill_bench", Path(__file__).resolve().parents[1] / "bench" / "backfill_bench.py")
bench = sys.modules.setdefault("backfill_bench", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)  # (registered first: its dataclasses look their module up)


def test_time_full_weights_each_sample_until_the_next():
    # 2 slots: empty 0-2 s, one busy 2-4 s, full 4-10 s
    samples = [(4.0, 2), (0.0, 0), (2.0, 1)]
    got = bench.time_full(samples, 2, 0.0, 10.0)
    assert abs(got["full_share"] - 0.6) < 1e-9
    assert abs(got["mean_busy"] - (2 * 0.5 + 6 * 1.0) / 10) < 1e-9
    # only the window counts, and more claims than slots count as full, not more
    assert bench.time_full([(0.0, 3)], 2, 5.0, 10.0) == {"full_share": 1.0, "mean_busy": 1.0}
    assert bench.time_full([], 2, 0.0, 10.0)["full_share"] == 0.0
    assert bench.time_full([(0.0, 2)], 2, 3.0, 3.0)["full_share"] == 0.0


def test_a_pool_short_of_full_is_told_apart_by_what_it_lacked():
    # 2 slots over 0-10 s: full 0-2; one free with a run waiting 2-3; one free, none waiting but
    # runs queued 3-6; one free and nothing left 6-10
    used = [(0.0, 2), (2.0, 1), (3.0, 1), (6.0, 1)]
    waiting = [(0.0, 0), (2.0, 1), (3.0, 0), (6.0, 0)]
    queued = [(0.0, 5), (2.0, 4), (3.0, 2), (6.0, 0)]
    got = bench.not_full_split(used, waiting, queued, 2, 0.0, 10.0)
    assert got == {"not_full_run_waiting": 0.1, "not_full_runs_queued": 0.3, "not_full_no_work": 0.4}
    assert bench.not_full_split(used, waiting[:2], queued, 2, 0.0, 10.0) == {}  # samples must pair up
    # full 2 of the 6 s it had work
    assert abs(bench.full_while_work({"full_share": 0.2, **got}) - 2 / 6) < 1e-9


def test_the_longest_refill_wait_is_found_in_the_trace():
    # 2 slots: a one-poll refill at 1 s, then 3-7 s a slot free while runs waited and one step held
    # an assignment it did not claim; at 8 s a free slot with nobody waiting is not a refill
    trace = [(0.0, 2, 1, 0, 5), (1.0, 1, 1, 1, 5), (1.5, 2, 0, 0, 5), (3.0, 1, 2, 1, 4), (5.0, 1, 3, 1, 4),
             (7.0, 2, 2, 0, 4), (8.0, 1, 0, 0, 0), (12.0, 0, 0, 0, 0)]
    assert bench.longest_refill_wait(trace, 2) == (3.0, 4.0, 1)
    assert bench.longest_refill_wait([], 2) == (0.0, 0.0, 0)


def test_intervals_at_once_is_the_vendor_record_as_samples():
    levels = bench.intervals_at_once([(0.0, 4.0), (1.0, 3.0), (3.0, 6.0)])
    assert levels[-1] == (6.0, 0)
    full = bench.time_full(levels, 2, 0.0, 6.0)
    assert abs(full["full_share"] - 3.0 / 6.0) < 1e-9  # two at once during 1-4 s


def test_tree_collects_live_descendants_once():
    procs = {pid: bench.Proc(pid, ppid, cpu, rss) for pid, ppid, cpu, rss in [
        (10, 1, 1.0, 100), (11, 10, 2.0, 200), (12, 11, 0.5, 50), (20, 1, 9.0, 900)]}
    members = bench.tree(procs, 10)
    assert sorted(p.pid for p in bench.tree(procs, 12, 20)) == [12, 20]  # several roots: one machine's processes
    assert sorted(p.pid for p in members) == [10, 11, 12]
    assert sum(p.rss for p in members) == 350 and sum(p.cpu_s for p in members) == 3.5
    assert bench.tree(procs, 99) == []
    me = [p for p in bench.read_procs().values() if p.ppid > 0]
    assert me and all(p.rss >= 0 for p in me)


def test_vendor_deal_follows_the_pool_limits():
    from pipeline.providers import POOL_LIMITS, REMOTE_PROVIDERS

    deal = bench.vendor_deal()
    assert {p: deal.count(p) for p in REMOTE_PROVIDERS} == {p: POOL_LIMITS[p] for p in REMOTE_PROVIDERS}


def test_emulated_vendor_latency_holds_a_job_until_its_time():
    with Hunyuan3DEmulator() as emu:
        plain = emu.new_job()
        assert [emu.advance(plain) for _ in range(len(emu.steps) + 1)][-1] == "done"  # one state per poll
        emu.job_seconds = (0.3, 0.3)
        job = emu.new_job()
        assert job.ready_at is not None and abs(job.ready_at - job.created - 0.3) < 1e-6
        states = [emu.advance(job) for _ in range(10)]  # polled fast: the documented states, then waiting
        assert states[:len(emu.steps)] == list(emu.steps) and set(states[len(emu.steps):]) == {emu.steps[-1]}
        assert not emu.finished(job)
        time.sleep(0.35)
        assert emu.advance(job) == "done" and emu.finished(job)

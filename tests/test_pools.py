"""`generated_model` waits for a slot in its provider's Dagster pool and frees it afterwards."""

from __future__ import annotations

import threading
import time

import dagster as dg
import sqlalchemy.exc

from pipeline.providers import POOL_LIMITS
from tests.test_pipeline import SMALL, draw_blob, run_asset


def test_generation_waits_for_its_provider_pool(kiln_env):
    folder = kiln_env / "concepts" / "pooled"
    draw_blob(folder / "front.png")
    (folder / "asset.toml").write_text(SMALL)
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("kiln/local", 1)
        # another run holds the only slot of the `local` pool
        assert storage.claim_concurrency_slot("kiln/local", "other-run", "generated_model").is_claimed

        results = []
        worker = threading.Thread(target=lambda: results.append(run_asset(instance, "pooled")))
        worker.start()
        try:
            time.sleep(8)
            assert worker.is_alive() and not results, "the run should be waiting for the pool slot"
            waiting = storage.get_concurrency_info("kiln/local")
            assert [s.run_id for s in waiting.claimed_slots] == ["other-run"]
            ours = [p for p in waiting.pending_steps if p.run_id != "other-run"]
            assert len(ours) == 1 and ours[0].assigned_timestamp is None
        finally:
            storage.free_concurrency_slot_for_step("other-run", "generated_model")
            worker.join(timeout=300)
        assert results and results[0].success
        done = storage.get_concurrency_info("kiln/local")
        assert done.claimed_slots == [] and done.pending_steps == []


def test_pool_gets_the_documented_default_limit(kiln_env):
    folder = kiln_env / "concepts" / "fresh"
    draw_blob(folder / "front.png")
    (folder / "asset.toml").write_text(SMALL)
    with dg.instance_for_test() as instance:
        assert run_asset(instance, "fresh").success
        assert instance.event_log_storage.get_concurrency_info("kiln/local").slot_count == POOL_LIMITS["local"]


def test_a_pool_another_run_creates_at_the_same_moment_is_used(kiln_env, monkeypatch):
    """A backfill's first runs of a provider all find its pool missing and create it; the database
    lets one insert win (seen on PostgreSQL: a unique violation failed an asset of the vendor bench)."""
    folder = kiln_env / "concepts" / "raced"
    draw_blob(folder / "front.png")
    (folder / "asset.toml").write_text(SMALL)
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        create = storage.set_concurrency_slots

        def lost_the_race(key, slots):
            create(key, 3)  # the other run's insert lands first
            raise sqlalchemy.exc.IntegrityError("INSERT INTO concurrency_limits", {}, Exception("duplicate key"))

        monkeypatch.setattr(storage, "set_concurrency_slots", lost_the_race)
        assert run_asset(instance, "raced").success
        assert storage.get_concurrency_info("kiln/local").slot_count == 3


def test_a_step_that_stops_waiting_leaves_no_assigned_slot_behind(monkeypatch):
    """A slot Dagster assigns to a waiting step is the step's to claim; if the step stops waiting
    (here its next claim raises, as a database error would), the assignment must go with it, or
    the slot idles until the step's retry. The 1,000-asset vendor bench saw a 48 s stretch with
    one such assignment unclaimed while other runs waited."""
    from types import SimpleNamespace

    from pipeline.pools import provider_slot

    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("kiln/local", 1)
        assert storage.claim_concurrency_slot("kiln/local", "other-run", "generated_model").is_claimed
        step = SimpleNamespace(step=SimpleNamespace(key="generated_model"))
        context = SimpleNamespace(
            instance=instance, run=SimpleNamespace(run_id="our-run"), log=SimpleNamespace(info=lambda _: None),
            op_execution_context=SimpleNamespace(get_step_execution_context=lambda: step))
        claim, calls = storage.claim_concurrency_slot, []

        def claim_then_fail(*args, **kwargs):
            calls.append(args)
            if len(calls) == 2:
                # the slot comes free and is assigned to our waiting step; then our claim fails
                storage.free_concurrency_slot_for_step("other-run", "generated_model")
                mine = [p for p in storage.get_concurrency_info("kiln/local").pending_steps if p.run_id == "our-run"]
                assert mine and mine[0].assigned_timestamp is not None
                raise sqlalchemy.exc.OperationalError("SELECT ... FOR UPDATE", {}, Exception("deadlock detected"))
            return claim(*args, **kwargs)

        monkeypatch.setattr(storage, "claim_concurrency_slot", claim_then_fail)
        try:
            with provider_slot(context, "local", poll_s=0.01):
                raise AssertionError("the claim failed; the body must not run")
        except sqlalchemy.exc.OperationalError:
            pass
        info = storage.get_concurrency_info("kiln/local")
        assert info.pending_steps == [] and info.claimed_slots == []
        monkeypatch.undo()
        assert storage.claim_concurrency_slot("kiln/local", "next-run", "generated_model").is_claimed

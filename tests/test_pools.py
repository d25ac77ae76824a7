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

"""One Dagster concurrency pool per provider (`kiln/<provider>`), claimed at run time, and the run
queue that knows each run's provider.

A pool named on the asset decorator is fixed, but Kiln picks the provider per asset and per run, so
`generated_model` claims its provider's pool itself through the instance's concurrency store, the
same store the executor uses for `pool=`: the pools, their limits and who holds a slot show on the
UI's concurrency page, and `dagster instance concurrency set kiln/runware 8` changes a limit. A pool
without a limit is created with the documented default from `pipeline.providers.POOL_LIMITS`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import dagster as dg
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from sqlalchemy.exc import IntegrityError

from .providers import POOL_LIMITS, pool_for

PROVIDER_TAG = "kiln/provider"


@contextmanager
def provider_slot(context: dg.AssetExecutionContext, provider: str, *,
                  poll_s: float = 0.5) -> Iterator[Callable[[], None]]:
    """Hold one slot of the provider's pool; yields `free`, which gives it back early (once the vendor
    has finished the job: fetching its file no longer takes the vendor's capacity). Runs waiting for
    a slot ask every `poll_s`, so a freed slot is taken again within it."""
    storage = context.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:  # e.g. an ephemeral in-memory instance
        yield lambda: None
        return
    key = pool_for(provider)
    info = storage.get_concurrency_info(key)
    if info.limit is None or (info.using_default_limit and info.slot_count == 0):
        try:
            storage.set_concurrency_slots(key, POOL_LIMITS.get(provider, 1))
        except IntegrityError:
            pass  # another run created the pool at the same moment (a backfill's first runs): use it
        info = storage.get_concurrency_info(key)
    run_id, step_key = context.run.run_id, context.op_execution_context.get_step_execution_context().step.key
    # A run resumed after its worker died takes back the slot the dead worker held.
    storage.free_concurrency_slot_for_step(run_id, step_key)
    held = True

    def free() -> None:
        nonlocal held
        if held:
            held = False
            storage.free_concurrency_slot_for_step(run_id, step_key)

    # One release for every way out: the job done (`free`, called early), the step's end, and a step
    # that stops waiting (an error, a termination), which also gives back a slot Dagster had assigned
    # it and would otherwise sit idle, unclaimed, until the step's retry (GENERATION_RETRY: 15 s,
    # then 30 s) or for good.
    try:
        waited = 0.0
        claim = storage.claim_concurrency_slot(key, run_id, step_key)
        while not claim.is_claimed:
            if waited == 0.0:
                context.log.info(f"waiting for a slot in pool {key} (limit {info.slot_count})")
            time.sleep(poll_s)
            waited += poll_s
            claim = storage.claim_concurrency_slot(key, run_id, step_key)
        if waited:
            context.log.info(f"got a slot in pool {key} after {waited:.0f} s")
        yield free
    finally:
        free()


def run_provider(run: dg.DagsterRun) -> str | None:
    """The run's generator: its `kiln/provider` tag, else what its partition's concept folder asks
    for (the daemon reads the same concepts folder as the sensor); None for runs of no game asset."""
    if PROVIDER_TAG in run.tags:
        return run.tags[PROVIDER_TAG]
    asset_id = run.tags.get("dagster/partition")
    if not asset_id:
        return None
    from . import concepts, settings

    try:
        return concepts.provider_of(concepts.list_files(settings.concepts_dir() / asset_id))
    except (concepts.ConceptError, OSError):
        return None


class ProviderRunCoordinator(QueuedRunCoordinator):
    """Dagster's run queue, with every run tagged `kiln/provider` before it is queued.

    The queue's per-provider limits (`concurrency: runs: tag_concurrency_limits` in dagster.yaml)
    match runs by that tag, which only the new_concept_art sensor's runs carried: a backfill's or
    an automation run had none, so a backfill of a thousand assets could fill every run slot with
    runs of one provider, each then waiting in a process for that provider's pool while another
    provider's pool sat idle. Tagged here, a run over its provider's limit stays queued and the
    runs behind it start (a run blocked by a tag limit does not block the runs after it)."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if PROVIDER_TAG not in run.tags:
            provider = run_provider(run)
            if provider is not None:
                self._instance.add_run_tags(run.run_id, {PROVIDER_TAG: provider})
                context = SubmitRunContext(self._instance.get_run_by_id(run.run_id), context.workspace)
        return super().submit_run(context)

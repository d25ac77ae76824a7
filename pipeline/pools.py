"""One Dagster concurrency pool per provider (`kiln/<provider>`), claimed at run time.

A pool named on the asset decorator is fixed, but Kiln picks the provider per asset and per run, so
`generated_model` claims its provider's pool itself through the instance's concurrency store, the
same store the executor uses for `pool=`: the pools, their limits and who holds a slot show on the
UI's concurrency page, and `dagster instance concurrency set kiln/runware 8` changes a limit. A pool
without a limit is created with the documented default from `pipeline.providers.POOL_LIMITS`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import dagster as dg

from .providers import POOL_LIMITS, pool_for


@contextmanager
def provider_slot(context: dg.AssetExecutionContext, provider: str, *, poll_s: float = 1.0) -> Iterator[None]:
    storage = context.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:  # e.g. an ephemeral in-memory instance
        yield
        return
    key = pool_for(provider)
    info = storage.get_concurrency_info(key)
    if info.limit is None or (info.using_default_limit and info.slot_count == 0):
        storage.set_concurrency_slots(key, POOL_LIMITS.get(provider, 1))
        info = storage.get_concurrency_info(key)
    run_id, step_key = context.run.run_id, context.op_execution_context.get_step_execution_context().step.key
    # A run resumed after its worker died takes back the slot the dead worker held.
    storage.free_concurrency_slot_for_step(run_id, step_key)
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
    try:
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, step_key)

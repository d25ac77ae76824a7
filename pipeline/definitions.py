"""Kiln's Dagster definitions: assets, checks, sensors, jobs, resources, executor."""

from __future__ import annotations

import dagster as dg

from .assets.catalog import catalog
from .checks import ALL_CHECKS
from .jobs import ASSET_CHAIN, asset_job, catalog_job
from .resources import KilnStorage, ManifestIOManager
from .sensors import ALL_SENSORS

STORAGE = KilnStorage()

defs = dg.Definitions(
    assets=[*ASSET_CHAIN, catalog],
    asset_checks=ALL_CHECKS,
    sensors=ALL_SENSORS,
    jobs=[asset_job, catalog_job],
    resources={"storage": STORAGE, "io_manager": ManifestIOManager(storage=STORAGE)},
    # Steps here are small; the multiprocess executor costs ~3 s per step on 2 cores (measured; see
    # docs/architecture.md, *Execution*).
    executor=dg.in_process_executor,
)

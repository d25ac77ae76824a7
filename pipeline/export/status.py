"""Each asset's last attempt, beside its last good (published) version.

`<asset_id>/status.json` at the export target holds the last attempt to export the asset:

    {"asset_id": str, "status": "exported" | "failed", "at": ISO-8601 UTC, "run_id": str | null,
     "stage": str | null, "reason": str | null (one line, failures only), "version": str | null}

The asset's `latest.json` (when it has a published version) carries the same record as
`last_attempt`, so a reader of either sees the same story: a failed attempt never touches the
published version, it is reported next to it. An asset with concept art and no attempt recorded is
`never_exported`.

Both files are replaced atomically (`ExportTarget.write`); the version folders stay immutable.
A re-run that exports the same version again changes nothing (the record of when that version was
first exported stands), so unchanged art leaves the export target byte for byte as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .publish import ExportTarget, latest_key, read_json, read_latest

STATUS_KEY = "status.json"
EXPORTED, FAILED, NEVER_EXPORTED = "exported", "failed", "never_exported"
STATUSES = (EXPORTED, FAILED, NEVER_EXPORTED)


def status_key(asset_id: str) -> str:
    return f"{asset_id}/{STATUS_KEY}"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def attempt(asset_id: str, status: str, *, stage: str | None = None, reason: str | None = None,
            version: str | None = None, run_id: str | None = None, at: str | None = None) -> dict[str, Any]:
    """One attempt record (see the module docstring)."""
    if status not in (EXPORTED, FAILED):
        raise ValueError(f"an attempt is {EXPORTED!r} or {FAILED!r}, not {status!r}")
    return {"asset_id": asset_id, "status": status, "at": at or now_iso(), "run_id": run_id, "stage": stage,
            "reason": reason, "version": version}


def read_status(target: ExportTarget, asset_id: str) -> dict[str, Any] | None:
    """The asset's last recorded attempt, or None."""
    return read_json(target, status_key(asset_id))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"


def record_attempt(target: ExportTarget, record: dict[str, Any]) -> bool:
    """Write `record` as the asset's last attempt (status.json, and latest.json's `last_attempt`).

    False, writing nothing, when it repeats what is recorded: an export of the version already
    recorded as exported."""
    asset_id = record["asset_id"]
    previous = read_status(target, asset_id)
    if (previous and previous.get("status") == EXPORTED == record["status"]
            and previous.get("version") == record.get("version")):
        latest = read_latest(target, asset_id)
        if latest is None or latest.get("last_attempt") == previous:
            return False
        record = previous  # latest.json moved on without it (a new publication): re-attach
    target.write(status_key(asset_id), _dumps(record), "application/json")
    latest = read_latest(target, asset_id)
    if latest is not None and latest.get("last_attempt") != record:
        target.write(latest_key(asset_id), _dumps({**latest, "last_attempt": record}), "application/json")
    return True


def asset_status(latest: dict[str, Any] | None, status: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """(status, last attempt) of one asset from its latest.json and status.json (either may be None).

    status.json is the newest word; without it a published version counts as exported when it was
    published (an export from before attempts were recorded)."""
    if status is not None:
        return status["status"], status
    if latest is not None:
        return EXPORTED, attempt(latest["asset_id"], EXPORTED, version=latest.get("version"),
                                 at=latest.get("published_at"))
    return NEVER_EXPORTED, None

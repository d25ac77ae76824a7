"""Where Kiln's data lives, from the environment (README, *Data layout and settings*;
docs/architecture.md, *Storage layout*).

Read at call time, not import time, so tests and the CLI can point a process at another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

KILN_VERSION = "0.1.0"


def data_dir() -> Path:
    return Path(os.environ.get("KILN_DATA_DIR") or "data").resolve()


def concepts_dir() -> Path:
    return data_dir() / "concepts"


def store_uri() -> str:
    return os.environ.get("KILN_STORE_URI") or str(data_dir() / "store")


def export_uri() -> str:
    return os.environ.get("KILN_EXPORT_URI") or str(data_dir() / "exports")


# The Dagster instance remembers which data folder its partitions came from: pointing the same
# instance at another folder retires every partition whose concept folder is not there.
DATA_DIR_RECORD = "kiln_data_dir.txt"


def record_data_dir(dagster_home: Path) -> Path | None:
    """Write this process's data folder into the instance home; return the one recorded before if it
    was another folder (None on first use or when they agree)."""
    record = Path(dagster_home) / DATA_DIR_RECORD
    current = data_dir()
    try:
        previous = Path(record.read_text("utf-8").strip())
    except OSError:
        previous = None
    if previous != current:
        record.write_text(f"{current}\n", "utf-8")
    return previous if previous is not None and previous != current else None

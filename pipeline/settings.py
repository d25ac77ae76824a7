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

"""Test kit: one place that knows how to stand up each vendor's emulator and client.

`open_vendor(name, tmp_path, monkeypatch)` sets the vendor's keys in the environment (distinctive
fake secrets, so tests can grep for them), starts its emulator, and returns a `VendorRig` with a
blob store, a client factory pointed at the emulator, and a request builder.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from pipeline.providers import make_provider
from pipeline.providers.base import GenerationRequest, ImageInput
from pipeline.storage import LocalBlobStore

from .hunyuan3d import Hunyuan3DEmulator
from .modelslab import ModelsLabEmulator
from .goneural import GoNeuralEmulator
from .pixazo import PixazoEmulator
from .runware import RunwareEmulator
from .scenario import ScenarioEmulator
from .server import Emulator

# Fake keys, distinctive enough to grep logs and errors for.
SECRETS = {
    "RUNWARE_API_KEY": "rw-SECRET-7f3a9c1e5b2d",
    "SCENARIO_SDK_API_KEY": "sc-KEY-SECRET-41d9e0aa",
    "SCENARIO_SDK_API_SECRET": "sc-SECRET-SECRET-9b77c2f1",
    "MODELSLAB_API_KEY": "ml-SECRET-5e8f0c3a9d1b",
    "PIXAZO_API_KEY": "px-SECRET-2c4e6a8b0d1f",
    "GONEURAL_API_KEY": "n4-SECRET-0a1b2c3d4e5f",
}

# Fast polling and backoff: emulated jobs finish after a few polls.
FAST: dict[str, Any] = {"poll_interval_s": 0.005, "backoff_base_s": 0.001, "backoff_max_s": 0.01,
                        "settle_s": 0.01, "missing_grace_s": 0.5}


class PresigningStore(LocalBlobStore):
    """A local store that hands out URLs the way S3 presigns them, served by the emulator."""

    def __init__(self, root: Path, url_base: str | None = None):
        super().__init__(root)
        self.url_base = url_base

    def presigned_url(self, sha: str, expires_s: int = 3600) -> str:
        if not self.url_base:
            return super().presigned_url(sha, expires_s)
        return f"{self.url_base}/_blobs/{sha}?X-Amz-Expires={expires_s}&X-Amz-Signature=0f0e0d"


@dataclass
class Vendor:
    name: str
    emulator: Callable[..., Emulator]
    key_vars: tuple[str, ...]
    url_only: bool = False
    billed: bool = True
    has_failed_state: bool = True
    downloads_file: bool = True  # the GLB comes from a file URL (Hunyuan3D-2 inlines it as base64)

    def start(self, **kwargs: Any) -> Emulator:
        creds = {
            "runware": lambda: {"api_key": SECRETS["RUNWARE_API_KEY"]},
            "scenario": lambda: {"api_key": SECRETS["SCENARIO_SDK_API_KEY"],
                                 "api_secret": SECRETS["SCENARIO_SDK_API_SECRET"]},
            "modelslab": lambda: {"api_key": SECRETS["MODELSLAB_API_KEY"]},
            "pixazo": lambda: {"api_key": SECRETS["PIXAZO_API_KEY"]},
            "goneural": lambda: {"api_key": SECRETS["GONEURAL_API_KEY"]},
            "hunyuan3d": lambda: {},
        }[self.name]()
        return self.emulator(**creds, **kwargs).__enter__()


VENDORS: dict[str, Vendor] = {
    "runware": Vendor("runware", RunwareEmulator, ("RUNWARE_API_KEY",)),
    "scenario": Vendor("scenario", ScenarioEmulator, ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET")),
    "modelslab": Vendor("modelslab", ModelsLabEmulator, ("MODELSLAB_API_KEY",), url_only=True),
    "pixazo": Vendor("pixazo", PixazoEmulator, ("PIXAZO_API_KEY",), url_only=True),
    "goneural": Vendor("goneural", GoNeuralEmulator, ("GONEURAL_API_KEY",)),
    "hunyuan3d": Vendor("hunyuan3d", Hunyuan3DEmulator, (), billed=False, has_failed_state=False,
                        downloads_file=False),
}


def png_bytes(size: int = 32, alpha: bool = True, shade: int = 0) -> bytes:
    mode = "RGBA" if alpha else "RGB"
    img = Image.new(mode, (size, size), (0, 0, 0, 0) if alpha else (255, 255, 255))
    for x in range(size // 4, 3 * size // 4):
        for y in range(size // 4, 3 * size // 4):
            img.putpixel((x, y), (200, 120 + shade, 40, 255) if alpha else (200, 120 + shade, 40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def image_input(name: str = "front.png", *, alpha: bool = True, shade: int = 0) -> ImageInput:
    data = png_bytes(alpha=alpha, shade=shade)
    return ImageInput(name, data, hashlib.sha256(data).hexdigest(), "image/png", alpha)


def make_request(asset_id: str = "crate_01", *, views: int = 1, alpha: bool = True, prompt: str | None = None,
                 seed: int | None = 42, options: dict[str, Any] | None = None,
                 category: str = "prop") -> GenerationRequest:
    # Different assets get different pixels: the fingerprint is content-addressed (not by asset id).
    base = sum(asset_id.encode()) % 40
    images = tuple(image_input(f"{i:02d}_view.png", alpha=alpha, shade=base + i) for i in range(views))
    return GenerationRequest(asset_id, images, prompt=prompt, category=category, seed=seed,
                             options=dict(options or {}))


@dataclass
class VendorRig:
    vendor: Vendor
    emu: Emulator
    store: PresigningStore
    logs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.vendor.name

    def provider(self, **options: Any):
        return make_provider(self.name, base_url=self.emu.base_url, options={**FAST, **options})

    def log(self, message: str) -> None:
        self.logs.append(message)


def open_vendor(name: str, tmp_path: Path, monkeypatch, **emulator_kwargs: Any) -> VendorRig:
    vendor = VENDORS[name]
    for var in vendor.key_vars:
        monkeypatch.setenv(var, SECRETS[var])
    store = PresigningStore(tmp_path / "store")
    emu = vendor.start(blob_source=store, **emulator_kwargs)
    if vendor.url_only:
        store.url_base = emu.url
    return VendorRig(vendor, emu, store)

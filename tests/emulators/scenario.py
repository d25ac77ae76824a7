"""Scenario emulator: asset upload, Rodin Gen-2.5 generate, job polling, asset URL resolution.

Follows seeds/001 (Basic auth key:secret, `POST /v1/generate/custom/model_rodin-hyper3d-v2-5` with
image asset ids, `GET /v1/jobs/{jobId}` until `success`, results in `job.metadata.assetIds`,
temporary asset URLs) and Scenario's upload guide (`POST /v1/assets` with base64 `image` + `name`)
and "How to retrieve the asset URL" (`GET /v1/assets/{assetId}` -> `asset.url`).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from .server import Emulator, Reply, Request, is_image, json_reply

MODEL_ID = "model_rodin-hyper3d-v2-5"
DOCUMENTED = {"images", "prompt", "tier", "addons", "qualityMeshOption", "material", "geometryInstructMode",
              "textureMode", "isSymmetric", "hdTexture", "textureDelight", "isMicro", "useOriginalAlpha",
              "previewRender", "TAPose", "seed"}

# Hyper3D's Rodin Gen-2.5 values (developer.hyper3d.ai/api-specification/rodin-gen2.5).
ENUMS = {
    "tier": ("Gen-2.5-Extreme-Low", "Gen-2.5-Low", "Gen-2.5-Medium", "Gen-2.5-High", "Gen-2.5-Extreme-High"),
    "addons": ("", "HighPack"),
    "material": ("PBR", "Shaded", "All", "Hybrid", "None"),
    "geometryInstructMode": ("faithful", "creative"),
    "textureMode": ("", "legacy", "extreme-low", "low", "medium", "high", "extreme-high"),
    "isSymmetric": ("unknown", "symmetric", "balanced", "asymmetric"),
}


class ScenarioEmulator(Emulator):
    name = "scenario"
    steps = ("queued", "in-progress")

    def __init__(self, *, api_key: str, api_secret: str, **kwargs: Any):
        super().__init__(api_key=api_key, api_secret=api_secret, **kwargs)
        self.uploads: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, str] = {}  # output asset id -> job id

    def routes(self):
        return [
            ("POST", r"/v1/assets", "upload", self._upload),
            ("POST", r"/v1/generate/custom/(?P<model>[^/]+)", "submit", self._generate),
            ("GET", r"/v1/jobs/(?P<job_id>[^/]+)", "poll", self._job),
            ("GET", r"/v1/assets/(?P<asset_id>[^/]+)", "asset", self._asset),
        ]

    def authorized(self, req: Request) -> bool:
        auth = req.headers.get("Authorization", "")
        self.last_credential = auth.removeprefix("Basic ")
        token = base64.b64encode(f"{self.credentials['api_key']}:{self.credentials['api_secret']}".encode()).decode()
        return auth == f"Basic {token}"

    def unauthorized(self, req: Request) -> Reply:
        return json_reply({"error": f"Unauthorized: bad credentials {self.last_credential}"}, 401)

    def _upload(self, req: Request) -> Reply:
        body = req.json() or {}
        image, name = body.get("image"), body.get("name")
        if not isinstance(image, str) or not name:
            return json_reply({"error": "image (base64) and name are required"}, 400)
        raw = image.split(",", 1)[1] if image.startswith("data:") else image
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return json_reply({"error": "image is not valid base64"}, 400)
        if not is_image(data):
            return json_reply({"error": "image is not a supported image format"}, 400)
        if len(data) >= 6 * 1024 * 1024:
            return json_reply({"error": "image too large for /v1/assets; use /v1/uploads"}, 413)
        asset_id = f"asset_{uuid.uuid4().hex[:20]}"
        self.uploads[asset_id] = {"name": name, "bytes": len(data)}
        return json_reply({"asset": {"id": asset_id, "kind": "image", "status": "success"}})

    def _generate(self, req: Request, model: str) -> Reply:
        if model != MODEL_ID:
            return json_reply({"error": f"model {model} not found"}, 404)
        body = req.json() or {}
        unknown = set(body) - DOCUMENTED
        images = body.get("images") or []
        if unknown:
            return json_reply({"error": f"unknown parameters {sorted(unknown)}"}, 400)
        if not 1 <= len(images) <= 5 or any(i not in self.uploads for i in images):
            return json_reply({"error": "images must be 1 to 5 asset ids of uploaded images"}, 400)
        for key, allowed in ENUMS.items():
            if key in body and body[key] not in allowed:
                return json_reply({"error": f"{key} must be one of {', '.join(map(repr, allowed))}"}, 400)
        if body.get("isMicro") and body.get("tier") != "Gen-2.5-Extreme-High":
            return json_reply({"error": "isMicro requires tier Gen-2.5-Extreme-High"}, 400)
        job = self.new_job(f"job_{uuid.uuid4().hex[:20]}", body=body)
        cost = 80 if body.get("tier") == "Gen-2.5-Extreme-High" else 40
        return json_reply({"job": {"jobId": job.id, "status": "queued", "progress": 0, "jobType": "inference",
                                   "metadata": {}}, "creativeUnitsCost": cost})

    def _job(self, req: Request, job_id: str) -> Reply:
        job = self.known(job_id)
        if job is None:
            return json_reply({"error": f"job {job_id} not found"}, 404)
        state = self.advance(job)
        out: dict[str, Any] = {"jobId": job.id, "jobType": "inference", "metadata": {}}
        if state == "done":
            asset_ids = [f"asset_{uuid.uuid4().hex[:20]}"]
            if (job.body or {}).get("previewRender"):
                asset_ids.insert(0, f"asset_{uuid.uuid4().hex[:20]}")  # a preview image comes first
            for i, asset_id in enumerate(asset_ids):
                self.outputs[asset_id] = "preview" if len(asset_ids) > 1 and i == 0 else "model"
            out.update(status="success", progress=1, metadata={"assetIds": asset_ids})
        elif state == "failed":
            out.update(status="failure", progress=0.4, error=job.fail_message)
        else:
            out.update(status=state, progress=0.5 if state == "in-progress" else 0)
        return json_reply({"job": out})

    def _asset(self, req: Request, asset_id: str) -> Reply:
        kind = self.outputs.get(asset_id)
        if kind is None:
            return json_reply({"error": f"asset {asset_id} not found"}, 404)
        if kind == "preview":
            return json_reply({"asset": {"id": asset_id, "mimeType": "image/png",
                                         "url": f"{self.url}/files/{uuid.uuid4().hex}.png"}})
        # Temporary CDN URL: a fresh signed link per resolution.
        return json_reply({"asset": {"id": asset_id, "mimeType": "model/gltf-binary", "url": self.file_url()}})

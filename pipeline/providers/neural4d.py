"""Neural4D (goneural): `premium-v1` image-to-3D tasks.

Contract (`../shared/seeds/004_*.txt`, Neural4D "Image to 3D"): `POST /v1/tasks/image-to-3d` with
Bearer auth and either an uploaded `image` (multipart/form-data) or an `asset_id`, not both;
`version` "premium-v1", `seed`, `faceLimit` (maximum faces, the model picks when unset), `pbr`;
the answer is the task object, whose `output.glb` is the model URL once finished.

Filled in from goneural's developer docs: `GET /v1/tasks/:id` returns the task object
(developer.goneural.ai/get-task); its `status` is one of `queued`, `in_progress`, `succeeded`,
`failed` (developer.goneural.ai/enums, "Task Status"). Where a failed task's reason lives is not
documented; Kiln reads `error`, then `meta.error`, and says whether the task was `refunded`.

The endpoint takes one image: Kiln uploads the first view (the one that seeds the materials).
"""

from __future__ import annotations

import time
from typing import Any

from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import RemoteProvider, check_bool, check_choice, check_int, message_from_json

VERSION = "premium-v1"


class Neural4DProvider(RemoteProvider):
    name = "neural4d"
    model = VERSION
    default_base_url = "https://api.goneural.ai"
    key_vars = ("NEURAL4D_API_KEY",)
    generation_options = frozenset({"version", "seed", "faceLimit", "pbr"})

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {creds['NEURAL4D_API_KEY']}", "Accept": "application/json"}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=5)
        p: dict[str, Any] = {"version": check_choice("version", self.name, opts.get("version", VERSION), (VERSION,)),
                             "pbr": check_bool("pbr", self.name, opts.get("pbr", True))}
        if opts.get("faceLimit") is not None:
            p["faceLimit"] = check_int("faceLimit", self.name, opts["faceLimit"], 1)
        seed = request.seed if request.seed is not None else opts.get("seed")
        if seed is not None:
            p["seed"] = check_int("seed", self.name, seed, 0)
        return p

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tier": params.get("version"), "seed": params.get("seed")}

    def submit(self, request: GenerationRequest, request_hash: str) -> JobHandle:
        params = self.params(request)
        first = request.images[0]
        form = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in params.items()}
        response = self.http.request("POST", "/v1/tasks/image-to-3d", data=form,
                                     files={"image": (first.name, first.data, first.mime_type)},
                                     what="submit the image-to-3d task", idempotent=False)
        task = self.http.json(response, "submit") or {}
        if not task.get("id"):
            raise ProviderError(f"{self.name}: the submit answer has no task id")
        return JobHandle(self.name, str(task["id"]), request_hash, time.time(), {})

    def poll(self, handle: JobHandle) -> JobStatus:
        response = self.http.request("GET", f"/v1/tasks/{handle.job_id}", what=f"poll task {handle.job_id}")
        task = self.http.json(response, f"poll task {handle.job_id}") or {}
        status = task.get("status")
        if status == "succeeded":
            url = (task.get("output") or {}).get("glb")
            if not url:
                return JobStatus("failed", message="succeeded without output.glb")
            handle.data["glb"] = url
            return JobStatus("succeeded", progress=1.0)
        if status == "failed":
            reason = task.get("error") or (task.get("meta") or {}).get("error") or "no reason given"
            reason = reason if isinstance(reason, str) else message_from_json(reason)
            refunded = " (the task was refunded)" if task.get("refunded") else ""
            return JobStatus("failed", message=self.http.redact(f"{reason}{refunded}"))
        return JobStatus("running" if status == "in_progress" else "queued")

    def fetch(self, handle: JobHandle) -> bytes:
        return self.download_result(handle, "glb")

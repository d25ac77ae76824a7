"""goneural.ai: `premium-v1` image-to-3D tasks.

The contract is goneural.ai's API (`api.goneural.ai`, developer.goneural.ai), not DreamTech's
Neural4D; the provider was first misnamed `neural4d`, which now fails with a pointer here.

Contract (goneural.ai's "Image to 3D" page): `POST /v1/tasks/image-to-3d` with Bearer auth
and either an uploaded `image` (multipart/form-data) or an `asset_id`, not both; `version`
"premium-v1", `seed`, `faceLimit` (maximum faces, the model picks when unset), `pbr`; the answer is
the task object, whose `output.glb` is the model URL once finished, with `creditUsed` and `refunded`.

Filled in from goneural's developer docs: `GET /v1/tasks/:id` returns the task object
(developer.goneural.ai/get-task); its `status` is one of `queued`, `in_progress`, `succeeded`,
`failed` (developer.goneural.ai/enums, "Task Status"). Where a failed task's reason lives is not
documented; Kiln reads `error`, then `meta.error`, and says whether the task was `refunded`: a
refunded task releases its budget reservation. `creditUsed` is recorded; with the account's
`usd_per_credit` it replaces the estimate in the spend ledger.

The endpoint takes exactly one image (`image` is a single file), so a concept folder with several
views is refused rather than silently cut to its first view; keep one view for this provider, or
use runware, scenario or pixazo, which take up to five. goneural names the task itself and offers
no look-up by a client-chosen id, so an unanswered submission is left to the artist (see the runner).
"""

from __future__ import annotations

import time
from typing import Any

from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import ProviderHttpError, RemoteProvider, check_bool, check_choice, check_int, message_from_json

VERSION = "premium-v1"


class GoNeuralProvider(RemoteProvider):
    name = "goneural"
    model = VERSION
    default_base_url = "https://api.goneural.ai"
    key_vars = ("GONEURAL_API_KEY",)
    generation_options = frozenset({"version", "seed", "faceLimit", "pbr"})

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {creds['GONEURAL_API_KEY']}", "Accept": "application/json"}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=1)
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

    def _charge(self, task: dict[str, Any], data: dict[str, Any]) -> float | None:
        credits = task.get("creditUsed")
        if isinstance(credits, (int, float)) and not isinstance(credits, bool):
            data["credits"] = credits
            if task.get("refunded"):
                return 0.0
            return self.credits_usd(credits)
        return 0.0 if task.get("refunded") else None

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        params = self.params(request)
        first = request.images[0]
        form = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in params.items()}
        response = self.http.request("POST", "/v1/tasks/image-to-3d", data=form,
                                     files={"image": (first.name, first.data, first.mime_type)},
                                     what="submit the image-to-3d task", idempotent=False)
        task = self.http.json(response, "submit") or {}
        if not task.get("id"):
            raise ProviderError(f"{self.name}: the submit answer has no task id")
        data: dict[str, Any] = {}
        charged = self._charge(task, data)
        if charged:
            data["charged_usd"] = charged
        return JobHandle(self.name, str(task["id"]), request_hash, time.time(), data)

    def poll(self, handle: JobHandle) -> JobStatus:
        try:
            response = self.http.request("GET", f"/v1/tasks/{handle.job_id}", what=f"poll task {handle.job_id}")
        except ProviderHttpError as exc:
            if exc.status == 404:
                return JobStatus("missing", message=str(exc))
            raise
        task = self.http.json(response, f"poll task {handle.job_id}") or {}
        status = task.get("status")
        if status == "succeeded":
            url = (task.get("output") or {}).get("glb")
            if not url:
                return JobStatus("failed", message="succeeded without output.glb")
            handle.data["glb"] = url
            return JobStatus("succeeded", progress=1.0, charged_usd=self._charge(task, handle.data))
        if status == "failed":
            reason = task.get("error") or (task.get("meta") or {}).get("error") or "no reason given"
            reason = reason if isinstance(reason, str) else message_from_json(reason)
            refunded = " (the task was refunded)" if task.get("refunded") else ""
            return JobStatus("failed", message=self.http.redact(f"{reason}{refunded}"),
                             refunded=bool(task.get("refunded")), charged_usd=self._charge(task, handle.data))
        return JobStatus("running" if status == "in_progress" else "queued")

    def fetch(self, handle: JobHandle) -> bytes:
        return self.download_result(handle, "glb")

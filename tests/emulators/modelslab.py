"""ModelsLab emulator: `POST /api/v6/3d/image_to_3d` and `POST /api/v6/3d/fetch/{id}`.

Follows seeds/002 (key in the JSON body, `image` is a URL the service downloads, documented ranges,
`output[]` file URLs) and docs.modelslab.com/3d-api/fetch (a `processing` answer with `id`, `eta`
and `fetch_result`; fetch returns the same until `success`). Refusals are `status: error` with a
`message`, with HTTP 200 as ModelsLab does; `instant=True` answers success at once, as it does for
cached or quick requests.
"""

from __future__ import annotations

import itertools
from typing import Any

from .server import Emulator, Reply, Request, json_reply

RANGES = {"ss_sampling_steps": (1, 50), "slat_sampling_steps": (1, 50), "slat_guidance_strength": (0, 10),
          "mesh_simplify": (0.9, 0.98), "resolution": (None, 512), "chunk_size": (None, 12000)}


class ModelsLabEmulator(Emulator):
    name = "modelslab"
    steps = ("processing", "processing")
    _ids = itertools.count(81_000_001)

    def __init__(self, *, api_key: str, instant: bool = False, **kwargs: Any):
        super().__init__(api_key=api_key, **kwargs)
        self.instant = instant

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v6"

    def routes(self):
        return [("POST", r"/api/v6/3d/image_to_3d", "submit", self._submit),
                ("POST", r"/api/v6/3d/fetch/(?P<job_id>\d+)", "poll", self._fetch)]

    def authorized(self, req: Request) -> bool:
        try:
            key = (req.json() or {}).get("key", "")
        except ValueError:
            key = ""
        self.last_credential = str(key)
        return key == self.credentials["api_key"]

    def unauthorized(self, req: Request) -> Reply:
        return json_reply({"status": "error", "message": f"Invalid Api Key {self.last_credential}"})

    def balance_body(self) -> Any:
        return {"status": "error", "message": "Insufficient balance, please recharge your wallet"}

    def _submit(self, req: Request) -> Reply:
        body = req.json()
        for name, (lo, hi) in RANGES.items():
            value = body.get(name)
            if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
                return json_reply({"status": "error", "message": f"The {name} must be between {lo} and {hi}."})
        if body.get("output_format") not in (None, "glb", "obj", "stl", "ply"):
            return json_reply({"status": "error", "message": "invalid output_format"})
        if not isinstance(body.get("image"), str) or self.fetch_image(body["image"]) is None:
            return json_reply({"status": "error", "message": "Could not download the image from the given URL"})
        job = self.new_job(str(next(self._ids)), body={k: v for k, v in body.items() if k != "key"})
        if self.instant and not job.fail_message:
            job.polls = len(self.steps)
            return json_reply(self._success(job))
        return json_reply({"status": "processing", "tip": "Your request is processing", "eta": 12,
                           "messege": "Try to fetch request after given estimated time", "id": int(job.id),
                           "fetch_result": f"{self.base_url}/3d/fetch/{job.id}", "output": [],
                           "future_links": [f"{self.url}/files/pending-{job.id}.glb"]})

    def _success(self, job) -> dict[str, Any]:
        url = self.file_url()
        return {"status": "success", "generationTime": 41.2, "id": int(job.id), "output": [url],
                "proxy_links": [url], "meta": {**(job.body or {}), "output_format": "glb"}}

    def _fetch(self, req: Request, job_id: str) -> Reply:
        job = self.known(job_id)
        if job is None:
            return json_reply({"status": "error", "message": "Request not found"})
        state = self.advance(job)
        if state == "done":
            return json_reply(self._success(job))
        if state == "failed":
            return json_reply({"status": "failed", "id": int(job.id), "message": job.fail_message})
        return json_reply({"status": "processing", "id": int(job.id), "eta": 5, "output": []})

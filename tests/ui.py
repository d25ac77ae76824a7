"""Drive headless Chromium over the DevTools protocol, to look at the Dagster UI as a person would.

The Dagster UI is a React app that keeps polling the server, so a fixed `--virtual-time-budget`
screenshot can catch it half-rendered. `Browser` keeps one Chromium open and waits for what a
person would wait for (text on the page, an image actually decoded) before taking a screenshot.
The protocol client is `websockets` (already installed: dagster-webserver depends on
uvicorn[standard]), so no browser-automation package is needed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from base64 import b64decode
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.browser import FLAGS, chromium


class Browser:
    """One headless Chromium with one page; stopped by its process group id on exit."""

    def __init__(self, size: tuple[int, int] = (1400, 900), timeout_s: float = 30):
        self.size = size
        self.timeout_s = timeout_s
        self._next_id = 0

    def __enter__(self) -> "Browser":
        self._profile = tempfile.TemporaryDirectory(prefix="kiln-chromium-")
        self._log = open(Path(self._profile.name) / "chromium.log", "w+b")
        self.proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        try:
            port = self._devtools_port()
            pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
            self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10).__enter__()
            self.call("Page.enable")
            self.resize(*self.size)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.__exit__(None, None, None)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the browser and its renderer/GPU processes
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._log.close()
        self._profile.cleanup()

    def _chromium_log(self, tail: int | None = 2000) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return text[-tail:] if tail else text

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", self._chromium_log(None))
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"Chromium did not open its DevTools port; it said:\n{self._chromium_log()}")

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send one protocol command and return its result (events in between are ignored)."""
        self._next_id += 1
        msg_id = self._next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def resize(self, width: int, height: int) -> None:
        """The viewport (what a screenshot shows); pages lay out again at the new size."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def wait_for(self, expression: str, what: str, timeout_s: float = 45):
        """Poll a JavaScript expression until it is truthy; fail naming `what` and the page text."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise AssertionError(f"the page never showed {what} within {timeout_s:.0f} s; it shows:\n{text}")
            time.sleep(0.25)

    def wait_for_text(self, *texts: str, timeout_s: float = 45) -> None:
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        self.wait_for(f"!!document.body && {checks}", f"the text {texts}", timeout_s)

    def settle(self, seconds: float = 1.0) -> None:
        """Let layout, fonts and transitions finish after the awaited content appeared."""
        time.sleep(seconds)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b64decode(data))
        return path

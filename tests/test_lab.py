"""`make lab`: JupyterLab serves the percent-format notebooks as notebooks, on the venv's kernel.

The test runs the Makefile's own `lab` recipe (the venv taken as it is), headless on
127.0.0.1 with a token and throw-away Jupyter directories, and talks to it only through
its REST API and a kernel's websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pin it from requirements.txt)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/maml_run.py"
TOKEN = uuid.uuid4().hex
START_TIMEOUT = 60  # seconds until the server must answer
# No proxy: every request goes to 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with _opener.open(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # Nothing of the user's home is read or written: config, data, runtime, settings.
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(tmp / name.lower())
    env["JUPYTER_TOKEN"] = TOKEN
    venv = sys.prefix
    # Exactly `make lab`, with the venv as it is (-o: never rebuilt from here).
    command = ["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{venv}/.installed",
               "lab", f"VENV={venv}",
               f"LAB_ARGS=--no-browser --ip=127.0.0.1 --port={port} --port-retries=0"]
    log = tmp / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(port, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`make lab` exited with status {proc.returncode}:\n{server.log_text()}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT} s:\n"
                                f"{server.log_text()}")
                time.sleep(0.25)
        yield server
    finally:
        # make, the shell and jupyter share one process group.
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _parameters_cell(model: dict) -> dict:
    cells = [c for c in model["content"]["cells"]
             if c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"expected one code cell tagged 'parameters', got {len(cells)}"
    return cells[0]


async def _execute(port: int, kernel_id: str, code: str, timeout: float = 60) -> tuple[str, str]:
    """Run ``code`` on the kernel through its websocket: (status, stdout)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels",
                          headers={"Authorization": f"token {TOKEN}"})
    ws = await websocket_connect(request)
    try:
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "session": uuid.uuid4().hex, "username": "test",
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        stdout, status, idle = [], None, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Done when the reply (shell) has come and the kernel is idle again (iopub): the
        # two channels are not ordered, and the output comes on iopub before idle.
        while status is None or not idle:
            raw = await asyncio.wait_for(ws.read_message(), deadline - loop.time())
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                stdout.append("\n".join(content["traceback"]))
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return status, "".join(stdout)
    finally:
        ws.close()


@pytest.mark.slow
def test_percent_notebook_is_served_as_a_notebook(lab):
    model = lab.api(f"/api/contents/{NOTEBOOK}?type=notebook&content=1")
    assert model["type"] == "notebook" and model["format"] == "json"
    assert model["content"]["cells"], "the notebook has no cells"
    assert "inner_lr" in _parameters_cell(model)["source"]
    # A click opens it as a notebook too: jupytext's viewer is the default for .py.
    plugin = lab.api("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = plugin["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook", viewers


@pytest.mark.slow
def test_parameters_cell_runs_on_the_venv_kernel(lab):
    model = lab.api(f"/api/contents/{NOTEBOOK}?type=notebook&content=1")
    specs = lab.api("/api/kernelspecs")
    name = model["content"]["metadata"].get("kernelspec", {}).get("name") or specs["default"]
    assert name in specs["kernelspecs"], f"kernel {name!r} not among {sorted(specs['kernelspecs'])}"
    kernel = lab.api("/api/kernels", method="POST", body={"name": name})
    try:
        cell = _parameters_cell(model)["source"]
        status, out = asyncio.run(_execute(lab.port, kernel["id"], cell))
        assert status == "ok", out
        # The cell edited and re-run: the kernel holds the new value, in the venv's Python.
        edited, n = re.subn(r"^inner_lr\s*=.*$", "inner_lr = -0.1", cell, flags=re.M)
        assert n == 1, cell
        status, out = asyncio.run(_execute(lab.port, kernel["id"], edited))
        assert status == "ok", out
        status, out = asyncio.run(_execute(lab.port, kernel["id"],
                                           "import sys\nprint(sys.prefix, inner_lr)"))
        assert status == "ok", out
        assert out.split() == [sys.prefix, "-0.1"], out
    finally:
        lab.api(f"/api/kernels/{kernel['id']}", method="DELETE")

"""JupyterLab serves the notebooks and runs a cell in a kernel (issue 4)."""
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = uuid.uuid4().hex


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, path, method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        return response.status, (json.loads(body) if body and path.startswith("/api") else body)


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={ROOT}", "--ServerApp.port_retries=0", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        for _ in range(120):
            try:
                api(port, "/api/status")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("jupyter lab exited at start")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_jupyterlab_lists_the_notebooks_and_runs_a_cell(server):
    import websocket
    status, page = api(server, "/lab")
    assert status == 200 and b"JupyterLab" in page
    _, listing = api(server, "/api/contents/notebooks")
    names = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
    assert names[:4] == ["01_resnext_block.ipynb", "02_resnext_stage.ipynb",
                         "03_resnext_network.ipynb", "04_training.ipynb"]
    _, kernel = api(server, "/api/kernels", method="POST")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server}/api/kernels/{kernel['id']}/channels?token={TOKEN}", timeout=60)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "import d2l_ext; print(d2l_ext.REPORT_ARCHS[3])", "silent": False}}))
    printed = ""
    deadline = time.time() + 60
    while time.time() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            printed += msg["content"]["text"]
        if msg["msg_type"] == "error":
            pytest.fail(f"the cell failed: {msg['content']['ename']}: {msg['content']['evalue']}")
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle" and printed:
            break
    ws.close()
    api(server, f"/api/kernels/{kernel['id']}", method="DELETE")
    assert printed.strip() == "((2, 64), (2, 128), (2, 256))"

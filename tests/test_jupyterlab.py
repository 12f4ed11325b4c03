"""JupyterLab, started as README says, serves the notebooks, runs a cell in a kernel and
serves every image the notebooks' Markdown shows (issues 4 and 11)."""
import json
import posixpath
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = uuid.uuid4().hex


def readme_command():
    """README's command that opens the notebooks: ``python -m jupyter lab [ARGS]``."""
    readme = (ROOT / "README.md").read_text()
    found = re.findall(r"^python -m jupyter lab\b([^#\n]*)", readme, re.M)
    assert len(found) == 1, "README should give one `python -m jupyter lab` command"
    return shlex.split(found[0])


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


@pytest.fixture(scope="module")
def server():
    """JupyterLab run from the repository root with README's arguments (no browser, a free
    port, a token); yields the port and the server's root folder."""
    args = readme_command()
    paths = [a for a in args if not a.startswith("-")]
    served = (ROOT / paths[0]).resolve() if paths else ROOT
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", *args, "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}",
         "--ServerApp.port_retries=0", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
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
        yield port, served
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_starts_jupyterlab_from_the_repository_root():
    # The notebooks show ../assets/*.png; a server rooted in notebooks/ cannot reach them.
    assert [a for a in readme_command() if not a.startswith("-")] == []


def test_jupyterlab_lists_the_notebooks_and_runs_a_cell(server):
    import websocket
    port, _ = server
    status, page = api(port, "/lab")
    assert status == 200 and b"JupyterLab" in page
    _, listing = api(port, "/api/contents/notebooks")
    names = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
    assert names[:5] == ["01_resnext_block.ipynb", "01b_cardinality.ipynb",
                         "02_resnext_stage.ipynb", "03_resnext_network.ipynb", "04_training.ipynb"]
    _, kernel = api(port, "/api/kernels", method="POST")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={TOKEN}", timeout=60)
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
    api(port, f"/api/kernels/{kernel['id']}", method="DELETE")
    assert printed.strip() == "((2, 64), (2, 128), (2, 256))"


IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=[\"']([^\"']+)")


def markdown_images():
    """(notebook, src) for every image in the notebooks' Markdown cells, both editions."""
    found = []
    for path in [*sorted((ROOT / "notebooks").glob("*.ipynb")),
                 *sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))]:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                for a, b in IMAGE.findall("".join(cell["source"])):
                    found.append((path, a or b))
    return found


def test_every_image_in_the_notebooks_is_served(server):
    """Fetch each image as JupyterLab's Markdown renderer asks for it: the src resolved
    against the notebook's folder inside the server root (a path cannot climb above the
    root: `..` there stays at the root), then GET /files/<path>."""
    port, served = server
    images = markdown_images()
    assert len(images) >= 6, images          # the block, stage and network diagrams, twice
    failures = []
    for notebook, src in images:
        assert not re.match(r"[a-z]+:", src), f"{notebook.name}: {src} is not in the repository"
        folder = notebook.parent.relative_to(served).as_posix()
        resolved = posixpath.normpath(posixpath.join("/", folder, urllib.parse.unquote(src)))
        url = "/files" + urllib.parse.quote(resolved)
        try:
            status, body = api(port, url)
        except urllib.error.HTTPError as e:
            status, body = e.code, b""
        if status != 200 or not body.startswith(b"\x89PNG"):
            failures.append(f"{notebook.name}: {src} -> GET {url}: {status}")
    assert not failures, failures

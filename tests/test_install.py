"""The README's first step, the way a newcomer does it: a fresh virtualenv, `pip install` of this
checkout without extras (editable, then a plain install of the wheel), and the `searchd` command
serving the seed articles. Catches an import that only works because a test or benchmark extra
pulled its package in, and templates or static files missing from the wheel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, SEEDS
from .daemon_helpers import eventually

pytestmark = pytest.mark.slow

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
SEED_ARTICLE = "world/us-russia-talks-saudi-arabia.txt"


def _clean_env() -> dict[str, str]:
    """The environment of a shell that never activated this test run's virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def _serve_and_search(searchd: Path, cwd: Path, index_dir: Path) -> None:
    """`searchd serve` on seeds/ (a free port, a temporary index) answers a search with the seed
    article and serves its page with the stylesheet it links."""
    log = cwd / "serve.log"
    proc = subprocess.Popen([str(searchd), "serve", str(SEEDS), "--index", str(index_dir), "--port", "0"],
                            cwd=cwd, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        def address() -> str | None:
            assert proc.poll() is None, f"searchd serve exited with {proc.returncode}:\n{log.read_text()}"
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", log.read_text())
            return found.group(1) if found else None

        base = eventually(address, timeout=120, interval=0.05)
        eventually(lambda: json.loads(_get(f"{base}/healthz")[1])["status"] == "ok", timeout=120, interval=0.05)
        status, body = _get(f"{base}/api/search?q=zelensky")
        assert status == 200 and json.loads(body)["hits"][0]["id"] == SEED_ARTICLE
        status, page = _get(f"{base}/search?q=zelensky")
        assert status == 200 and b"Zelensky" in page
        stylesheet = re.search(rb'href="(/static/style\.css[^"]*)"', page).group(1).decode().replace("&amp;", "&")
        status, css = _get(base + stylesheet)
        assert status == 200 and b"prefers-color-scheme" in css
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()


def _check_commands(venv: Path, workdir: Path) -> None:
    searchd = venv / "bin" / "searchd"
    assert "serve" in _run(searchd, "--help", cwd=workdir)
    assert _run(searchd, "--version", cwd=workdir).strip() == f"searchd, version {VERSION}"
    _serve_and_search(searchd, workdir, workdir / f"index-{len(list(workdir.glob('index-*')))}")


def test_a_fresh_virtualenv_installs_the_checkout_without_extras_and_serves_the_seeds(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # Editable, as the README's quick start does it. Run from outside the checkout, so that only
    # what the install put in the virtualenv can be imported.
    _run(*pip, "-e", REPO, cwd=tmp_path)
    _check_commands(venv, tmp_path)
    # The wheel, as a service install does it: templates and static files must be inside it. Its
    # dependencies are the ones just proven enough, so they are not fetched again.
    _run(*pip, "--force-reinstall", "--no-deps", REPO, cwd=tmp_path)
    installed = _run(venv / "bin" / "python", "-c", "import searchd, sys; sys.stdout.write(searchd.__file__)", cwd=tmp_path)
    assert Path(installed).is_relative_to(venv), f"searchd imported from {installed}, not from the wheel"
    _check_commands(venv, tmp_path)

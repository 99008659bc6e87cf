"""The systemd units under deploy/: valid for systemd, and they run what the README says."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from searchd.config import _ENV_NAMES

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = {"searchd-watch.service": "watch", "searchd-web.service": "web"}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / name)
    return parser


@pytest.mark.parametrize("name,command", UNITS.items())
def test_units_start_the_right_command_and_stop_gracefully(name, command):
    service = unit(name)["Service"]
    assert service["ExecStart"].split()[1:] == [command]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/searchd/searchd.env"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_only_the_daemon_may_write_the_index():
    assert unit("searchd-watch.service")["Service"]["StateDirectory"] == "searchd"
    # "-": read-only when it exists (with --engine typesense there is no local index).
    assert unit("searchd-web.service")["Service"]["ReadOnlyPaths"] == "-/var/lib/searchd"


@pytest.mark.parametrize("example", ["searchd.env.example", "searchd-typesense.env.example"])
def test_the_example_environment_names_real_settings(example):
    names = [line.lstrip("#").split("=")[0] for line in (DEPLOY / example).read_text().splitlines()
             if "=" in line and not line.startswith("# ")]
    assert names and set(names) <= set(_ENV_NAMES.values())


def test_a_daemon_per_source_on_typesense():
    service = unit("searchd-watch@.service")["Service"]
    assert service["ExecStart"].split()[1:] == ["watch"] and service["Environment"] == "SEARCHD_SOURCE=%i"
    assert service["EnvironmentFile"] == "/etc/searchd/%i.env" and service["KillSignal"] == "SIGTERM"
    node = unit("typesense.service")["Service"]
    assert "--nodes /etc/typesense/nodes" in node["ExecStart"] and node["Restart"] == "on-failure"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", [*UNITS, "typesense.service", "searchd-watch@news.service"])
def test_systemd_accepts_the_unit(name, tmp_path):
    # The unit names /opt/searchd; point it at this checkout's searchd so that verify can check it.
    # A template is checked as one of its instances.
    searchd = Path(sys.executable).parent / "searchd"
    source = DEPLOY / (name.split("@")[0] + "@.service" if "@" in name else name)
    text = source.read_text().replace("/opt/searchd/.venv/bin/searchd", str(searchd))
    (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    assert problems == [], problems

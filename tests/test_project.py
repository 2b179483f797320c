"""Project-level contracts: CLI help, conda env pins equal the package's, README commands."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["fetch", "query-emdb", "simulate", "sse", "label", "prepare-map", "crop", "crop-entry", "split",
            "dataset", "train", "predict", "evaluate", "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", command, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: cryosse " + command in r.stdout


def test_env_pins_equal_package_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.match(r"([A-Za-z0-9_.-]+)==(.+)", d).groups() for d in project["dependencies"])
    env = yaml.safe_load((ROOT / "envs/cryosse.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = dict(re.match(r"([A-Za-z0-9_.-]+)==(.+)", d).groups() for d in pip if "==" in d)
    assert env_pins == pins


def test_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    assert any("make demo" in line for line in lines[:12])
    assert any("make test" in line for line in lines[:12])
    assert "make test" in (ROOT / ".ci/run").read_text()

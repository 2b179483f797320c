"""Packaging: the library's dependencies are ranges, the exact pins live in constraints.txt (the
Makefile installs with it), and the conda environment of the rules carries the same pins."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _constraints() -> dict[str, str]:
    return _pins((ROOT / "constraints.txt").read_text().splitlines())


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_dependencies_are_ranges_satisfied_by_the_pins():
    pins = _constraints()
    project = _project()
    reqs = [Requirement(d) for d in project["dependencies"]]
    reqs += [Requirement(d) for extra in project["optional-dependencies"].values() for d in extra]
    for r in reqs:
        assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r} pins exactly"
        assert r.name.lower() in pins, f"{r.name} has no pin in constraints.txt"
        assert r.specifier.contains(pins[r.name.lower()]), f"pin {pins[r.name.lower()]} outside {r}"


def test_env_pins_equal_the_constraints():
    env = yaml.safe_load((ROOT / "envs/cryosse.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = _pins(pip)
    runtime = {Requirement(d).name.lower() for d in _project()["dependencies"]}
    assert set(env_pins) == runtime
    pins = _constraints()
    assert {k: pins[k] for k in runtime} == env_pins


def test_makefile_installs_with_the_constraints():
    make = (ROOT / "Makefile").read_text()
    installs = [line for line in make.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs

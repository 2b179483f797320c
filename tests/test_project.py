"""Project-level contracts: CLI help, README commands, layout rules of the package."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["fetch", "query-emdb", "simulate", "sse", "label", "prepare-map", "crop", "crop-entry", "split",
            "dataset", "train", "predict", "evaluate", "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", command, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: cryosse " + command in r.stdout


def test_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    assert any("make demo" in line for line in lines[:12])
    assert any("make test" in line for line in lines[:12])
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_readme_is_a_guide():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for page in ("pipeline", "data_contract", "interop", "online", "training", "prediction", "cluster", "bundled_model"):
        assert (ROOT / "docs" / f"{page}.md").is_file() and f"docs/{page}.md" in text, page


def test_nothing_in_the_package_names_the_shared_folder():
    """The product does not know where the lab keeps its data (the real-map cases are data in
    bench/real_maps.yaml); bundle-only training structures live outside the package."""
    src = ROOT / "src" / "cryosse"
    for f in src.rglob("*.py"):
        text = f.read_text()
        assert "shared/data" not in text and "../shared" not in text and "parents[3]" not in text, f
    assert not (src / "data" / "structures_extra").exists()


def test_modules_are_small_and_prep_never_imports_later_stages():
    src = ROOT / "src" / "cryosse"
    for f in src.rglob("*.py"):
        n = len(f.read_text().splitlines())
        assert n <= 500, (f, n)
    later = re.compile(r"^\s*from \.\.(train|net|inference|evaluate|research|cli)\b|^\s*import cryosse\.(train|net|inference)",
                       re.M)
    for f in (src / "prep").rglob("*.py"):
        assert not later.search(f.read_text()), f
    for f in (src / "fetch").rglob("*.py"):
        assert not re.search(r"^\s*from \.\.(prep|train|net|inference|evaluate)\b", f.read_text(), re.M), f


@pytest.mark.parametrize("old,new", [
    (["train", "--datalist", "d", "--out-dir", "X"], ["train", "--datalist", "d", "-o", "X"]),
    (["label", "m.pdb", "x.mrc", "--chains", "A,B", "--radius", "2.5", "-o", "l.mrc"],
     ["label", "m.pdb", "x.mrc", "--chain", "A,B", "--label-radius", "2.5", "-o", "l.mrc"]),
    (["predict", "x.mrc", "--zone", "4", "--chains", "A", "-o", "p"],
     ["predict", "x.mrc", "--zone-radius", "4", "--chain", "A", "-o", "p"]),
    (["split", "--identity", "0.4", "-o", "s.tsv"], ["split", "--max-identity", "0.4", "-o", "s.tsv"]),
    (["query-emdb", "--resolution", "4", "8", "-o", "q.tsv"], ["query-emdb", "--resolution-range", "4", "8", "-o", "q.tsv"]),
    (["evaluate", "--prediction", "p", "--truth", "t", "--json", "s.json"],
     ["evaluate", "--prediction", "p", "--truth", "t", "-o", "s.json"]),
])
def test_old_spellings_are_hidden_aliases(old, new):
    from cryosse.cli import build_parser

    p = build_parser()
    a, b = vars(p.parse_args(old)), vars(p.parse_args(new))
    assert {k: v for k, v in a.items() if k != "func"} == {k: v for k, v in b.items() if k != "func"}
    sub = next(x for x in p._actions if x.dest == "command").choices[new[0]]
    hidden = [f for f in old if f.startswith("--") and f not in new]
    assert not [f for f in hidden if re.search(re.escape(f) + r"(?![-\w])", sub.format_help())]


def test_missing_output_is_one_line_naming_the_flag(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cryosse", "simulate", str(tmp_path / "m.pdb")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "cryosse simulate: error: the following arguments are required: -o/--output"]

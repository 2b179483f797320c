"""The real-map benchmark: a checkpoint scored on real experimental maps with fitted models.

The cases are data, not code: a YAML file (``bench/real_maps.yaml`` holds the ones that judge
the bundled model) lists each map, its model, its native resolution and an optional low-pass,
with paths relative to a data folder (``data:`` in the file, relative to the file, or
``--data``). Each case is scored in its model's zone (:mod:`cryosse.evaluate.zone`); with
``diagnose``, the research diagnostics (:mod:`cryosse.research.diagnostics`) are added.

The maps are for evaluation only: nothing in the training recipe reads them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Map, write_json, write_text
from .zone import RealCase, score_case

__all__ = ["read_cases", "score_real_maps", "format_real_table", "card_scores", "cases_and_data"]

_CASE_KEYS = {"name", "map", "model", "native_resolution_a", "lowpass_a", "has_sheet", "note", "set", "min_plddt",
              "placements"}
#: The validation sets a case may belong to (see bench/real_maps.yaml).
SETS = ("selection", "report")


def read_cases(path: str | os.PathLike) -> tuple[list[RealCase], Path | None]:
    """The cases of a real-map YAML file and its data folder (``data:``, relative to the
    file; None when the file names none)."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(p, f"not a readable real-map case file ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list) or not doc["cases"]:
        raise InputError(p, "expected a mapping with a non-empty list 'cases'")
    cases, names = [], set()
    for k, c in enumerate(doc["cases"], start=1):
        if not isinstance(c, dict) or not {"name", "map", "model", "native_resolution_a"} <= set(c):
            raise InputError(p, f"case {k}: needs name, map, model and native_resolution_a")
        unknown = set(c) - _CASE_KEYS
        if unknown:
            raise InputError(p, f"case {k}: unknown keys {', '.join(sorted(unknown))}")
        if c.get("set", "report") not in SETS:
            raise InputError(p, f"case {k}: set must be one of {', '.join(SETS)}, not {c['set']!r}")
        problem = _case_problem(c, names)
        if problem:
            raise InputError(p, f"case {k}: {problem}")
        names.add(str(c["name"]))
        try:
            cases.append(RealCase(str(c["name"]), str(c["map"]), str(c["model"]), float(c["native_resolution_a"]),
                                  float(c["lowpass_a"]) if c.get("lowpass_a") is not None else None,
                                  bool(c.get("has_sheet", True)), str(c.get("note", "")),
                                  str(c.get("set", "report")),
                                  float(c["min_plddt"]) if c.get("min_plddt") is not None else None,
                                  _placements(c.get("placements") or [])))
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(p, f"case {k}: {exc}") from None
    data = doc.get("data")
    return cases, ((p.parent / data) if data else None)


def _case_problem(c: dict, names: set) -> str | None:
    """What is wrong with a case's untrusted values, or None: the name becomes file names (the id
    grammar, unique), the paths must stay inside the data folder, resolutions are in Å."""
    import math
    import re

    from ..ids import MAP_ID
    from ..io.rules import PATH

    name = c["name"]
    if not isinstance(name, str) or not MAP_ID.match(name):
        return f"name {name!r:.60} is not a plain id (letters, digits, '_' and '-'; it names output files)"
    if name in names:
        return f"name {name!r} is used by an earlier case"
    for key in ("map", "model"):
        v = c[key]
        if not isinstance(v, str) or not v or not re.fullmatch(PATH, v):
            return f"{key} must be a path, got {v!r:.60}"
        if os.path.isabs(v) or ".." in Path(v).parts:
            return f"{key} {v!r:.60} must be a path inside the data folder (relative, without '..')"
    for key, ok, text in (("native_resolution_a", lambda v: 0 < v <= 50, "in (0, 50] Å"),
                          ("lowpass_a", lambda v: 0 < v <= 50, "in (0, 50] Å"),
                          ("min_plddt", lambda v: 0 <= v <= 100, "in [0, 100]")):
        v = c.get(key)
        if v is None and key != "native_resolution_a":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
            return f"{key} must be a number {text}, got {v!r:.40}"
    return None


def _placements(items) -> tuple:
    """Rigid placements ``[{rotation: 3x3, translation: 3}, ...]`` as (R, t) tuples; a rotation
    must be proper (orthonormal, determinant +1)."""
    import numpy as np

    if not isinstance(items, list):
        raise ValueError("placements must be a list of {rotation, translation}")
    out = []
    for k, p in enumerate(items, start=1):
        if not isinstance(p, dict) or set(p) != {"rotation", "translation"}:
            raise ValueError(f"placement {k}: needs exactly rotation and translation")
        r = np.asarray(p["rotation"], dtype=float)
        t = np.asarray(p["translation"], dtype=float)
        if r.shape != (3, 3) or t.shape != (3,) or not (np.isfinite(r).all() and np.isfinite(t).all()):
            raise ValueError(f"placement {k}: rotation must be 3x3 and translation 3 finite numbers")
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
            raise ValueError(f"placement {k}: rotation is not a proper rotation matrix")
        out.append((tuple(map(tuple, r.tolist())), tuple(t.tolist())))
    return tuple(out)


def cases_and_data(cases, data_dir=None, *, missing_ok: bool = False) -> tuple[list[RealCase], Path | None]:
    """The cases (read from a case file when given its path) and the folder their paths are
    relative to (``data_dir``, else the file's ``data:``). A folder that does not exist is an
    error, or, with ``missing_ok`` (benchmarks on a clone without the real maps), ``None``."""
    data_from_file = None
    if isinstance(cases, (str, os.PathLike)):
        cases, data_from_file = read_cases(cases)
    data = Path(data_dir) if data_dir else data_from_file
    if data is None or not data.is_dir():
        if missing_ok:
            return list(cases), None
        raise InputError(str(data or "--data"), "real-map folder not found (pass --data, or name it as "
                                                "'data:' in the case file)")
    return list(cases), data


def score_real_maps(checkpoint: str | os.PathLike, cases, data_dir: str | os.PathLike | None = None,
                    out_dir: str | os.PathLike | None = None, *,
                    device: str | None = None, tta: bool = False, figures: bool = True,
                    diagnose: bool = False) -> dict:
    """Score ``checkpoint`` on every case (a list of :class:`RealCase`, or a case
    file for :func:`read_cases`; ``data_dir`` overrides the file's data folder); write
    ``real_maps.json``/``.md`` (and slice figures) into ``out_dir`` when given. Returns the summary with the mean F1 over cases.
    ``diagnose`` adds the clean-simulation scores and the grid ceiling (see :func:`score_case`)."""
    from ..net.checkpoint import load_checkpoint

    cases, data_dir = cases_and_data(cases, data_dir)
    net, card, _ = load_checkpoint(checkpoint)
    rows = []
    for case in cases:
        r = score_case(case, data_dir, net, card, device=device, tta=tta, diagnose=diagnose)
        arrays = r.pop("_arrays")
        if out_dir and figures:
            _figure(case.name, *arrays, Path(out_dir) / f"{case.name}.png")
        rows.append(r)
    summary = {"checkpoint": str(checkpoint), "data_dir": str(data_dir), "tta": tta,
               "mean_voxel_f1": _class_means(rows, lambda r, c: r["voxel"][c]["f1"]),
               "mean_residue_f1": _class_means(rows, lambda r, c: r["residue"][c]["f1"]),
               **({"diagnosis": {key: _class_means(rows, lambda r, c, key=key: r["diagnosis"][key][c])
                                 for key in ("clean_simulation", "trace_oracle", "grid_ceiling")}} if diagnose else {}),
               "cases": rows, "model_card": {k: card.get(k) for k in ("preset", "loss", "steps", "recipe")}}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if diagnose and figures:
            from ..research.diagnostics import diagnosis_figure

            diagnosis_figure(summary, out / "diagnosis.png")
        write_json(out / "real_maps.json", summary)
        write_text(out / "real_maps.md", format_real_table(summary) + "\n")
    return summary


def _class_means(rows: list[dict], value) -> dict:
    """Mean of ``value(row, class)`` over the cases: helix over all of them, sheet over those
    that score it (NaN, without a warning, when none does)."""
    out = {}
    for cls in ("helix", "sheet"):
        vals = [value(r, cls) for r in rows if cls == "helix" or r["has_sheet"]]
        out[cls] = float(np.mean(vals)) if vals else float("nan")
    return out


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_real_table(summary: dict) -> str:
    lines = ["| map | voxel F1 helix | voxel F1 sheet | residue F1 helix | residue F1 sheet | "
             "all-helix F1 | predict (s) |", "|---|---|---|---|---|---|---|"]
    for r in summary["cases"]:
        sheet_v = _f(r["voxel"]["sheet"]["f1"]) if r["has_sheet"] else "(not scored)"
        sheet_r = _f(r["residue"]["sheet"]["f1"]) if r["has_sheet"] else "(not scored)"
        lines.append(f"| {r['case']} | {_f(r['voxel']['helix']['f1'])} | {sheet_v} | "
                     f"{_f(r['residue']['helix']['f1'])} | {sheet_r} | {_f(r['trivial']['all_helix'])} | "
                     f"{r['predict_s']} |")
    mv, mr = summary["mean_voxel_f1"], summary["mean_residue_f1"]
    lines.append(f"| **mean** | **{_f(mv['helix'])}** | **{_f(mv['sheet'])}** | {_f(mr['helix'])} | "
                 f"{_f(mr['sheet'])} | | |")
    if "diagnosis" in summary:
        lines += ["", "Diagnosis (voxel F1 helix / sheet): the same network on a clean simulation of "
                  "each fitted model on the map's grid; the Cα-trace oracle (each voxel labelled by its "
                  "nearest Cα, exact positions and classes, best radius); the working grid's ceiling.", "",
                  "| map | real map | clean simulation | Cα-trace oracle | grid ceiling |",
                  "|---|---|---|---|---|"]

        def hs(d, has_sheet):
            return f"{_f(d['helix'])} / {_f(d['sheet']) if has_sheet else '–'}"
        for r in summary["cases"]:
            d = r["diagnosis"]
            real = {"helix": r["voxel"]["helix"]["f1"], "sheet": r["voxel"]["sheet"]["f1"]}
            lines.append(f"| {r['case']} | {hs(real, r['has_sheet'])} | "
                         f"{hs(d['clean_simulation'], r['has_sheet'])} | "
                         f"{hs(d['trace_oracle'], r['has_sheet'])} | {hs(d['grid_ceiling'], r['has_sheet'])} |")
        d = summary["diagnosis"]
        lines.append(f"| **mean** | {hs(mv, True)} | {hs(d['clean_simulation'], True)} | "
                     f"{hs(d['trace_oracle'], True)} | {hs(d['grid_ceiling'], True)} |")
    return "\n".join(lines)


def _figure(name: str, m: Map, truth: Map, mask: np.ndarray, pred, png: Path) -> None:
    from .figures import _slice_figure

    png.parent.mkdir(parents=True, exist_ok=True)
    shown = pred.labels.with_data(np.where(mask, pred.labels.data, 0).astype(np.uint8))
    _slice_figure(png, m, truth, shown, f"{name} (scored zone)")


def card_scores(real_maps_json: str | os.PathLike) -> dict:
    """The part of ``real_maps.json`` (from :func:`score_real_maps`) that a model card records:
    the mean F1 and each case's voxel and residue F1 (sheet None where it is not scored)."""
    import json

    rm = json.loads(Path(real_maps_json).read_text())
    return {"mean_voxel_f1": rm["mean_voxel_f1"], "mean_residue_f1": rm["mean_residue_f1"],
            "cases": {c["case"]: {"voxel_helix_f1": c["voxel"]["helix"]["f1"],
                                  "voxel_sheet_f1": c["voxel"]["sheet"]["f1"] if c["has_sheet"] else None,
                                  "residue_helix_f1": c["residue"]["helix"]["f1"],
                                  "residue_sheet_f1": c["residue"]["sheet"]["f1"] if c["has_sheet"] else None}
                      for c in rm["cases"]}}

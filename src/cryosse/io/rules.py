"""The one set of value rules of every stage's settings: ranges of single fields, cross-field
checks (low < high in every range, split fractions summing to > 0) and the URL and path
grammars. The command line (:func:`cryosse.cli.options.settings`) and the workflow config
(:func:`cryosse.workflow.check_config`) both check with :func:`check`; the config schema's
bounds and patterns are held equal to these in ``tests/test_hostile.py``.

A rule is ``(op, bound)`` with op one of ``>``, ``>=``, ``<=``, ``<``; a field may have several.
"""
from __future__ import annotations

import re

__all__ = ["RULES", "RANGES", "URL", "PATH", "check", "problems", "problems_in", "check_url", "check_path"]

_POS = ((">", 0),)
_NONNEG = ((">=", 0),)
_FRACTION = ((">=", 0), ("<=", 1))

#: settings class name -> field -> rules (every element of a tuple field)
RULES: dict[str, dict[str, tuple]] = {
    "SimulateConfig": {"resolution_a": ((">", 0), ("<=", 50)), "voxel_size_a": ((">", 0), ("<=", 10)),
                       "padding_a": _NONNEG},
    "LabelConfig": {"radius_a": ((">", 0), ("<=", 20))},
    "ComponentConfig": {"zone_radius_a": _POS, "margin_a": _NONNEG, "multiple": ((">=", 1),),
                        "max_side": ((">=", 8),), "label_radius_a": ((">", 0), ("<=", 20))},
    "QualityConfig": {"voxel_size_a": ((">", 0), ("<=", 10)), "resolution_a": _POS,
                      "min_correlation": ((">=", -1), ("<=", 1)), "min_atoms_in_contour": _FRACTION,
                      "min_coverage": _FRACTION, "min_sse_fraction": _FRACTION, "zone_radius_a": _POS},
    "SplitConfig": {"max_identity": ((">", 0), ("<=", 1)), "kfold": _NONNEG},
    "TrainingSetConfig": {"resolutions_a": ((">", 0), ("<=", 50)), "voxel_size_a": _POS,
                          "label_radius_a": ((">", 0), ("<=", 20)), "max_identity": ((">", 0), ("<=", 1))},
    "FetchConfig": {"timeout_s": _POS, "retries": _NONNEG, "backoff_s": _NONNEG, "max_backoff_s": _NONNEG,
                    "per_host": ((">=", 1),), "chunk_bytes": ((">=", 1),),
                    "max_map_mb": _POS, "max_file_mb": _POS},
    "EmdbQuery": {"resolution_a": _POS, "max_map_mb": _POS, "limit": ((">=", 1),)},
    "PredictConfig": {"overlap": ((">=", 0), ("<", 1)), "tile": _NONNEG, "batch": ((">=", 1),),
                      "max_memory_gb": _POS, "slab": ((">=", 1),), "threads": _NONNEG},
    "TrainConfig": {"voxel_size_a": _POS, "patch": ((">=", 8),), "batch": ((">=", 1),), "steps": ((">=", 1),),
                    "lr": _POS, "val_every": ((">=", 1),), "checkpoint_every": ((">=", 1),),
                    "patience": _NONNEG, "max_minutes": _NONNEG, "weight_decay": _NONNEG,
                    "realism_ramp": _FRACTION, "realism_clean": _FRACTION},
}

#: fields that are ranges (low, high): low < high
RANGES: dict[str, tuple[str, ...]] = {"QualityConfig": ("resolution_a",), "EmdbQuery": ("resolution_a",),
                                      "TrainConfig": ("realism_ramp",)}

#: an archive URL: http(s) with a host, or file:// (a local mirror); no whitespace, quotes or
#: shell metacharacters anywhere
URL = r"(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|file://)(/[A-Za-z0-9._~%/+=@,:-]*)?"
#: a path in a config: no control characters (tabs and newlines included)
PATH = r"[^\x00-\x1f\x7f]*"

_URL, _PATH = re.compile(URL), re.compile(PATH)  # fullmatch: "$" would let a final newline through
_OPS = {">": (lambda v, b: v > b, "> {}"), ">=": (lambda v, b: v >= b, ">= {}"),
        "<=": (lambda v, b: v <= b, "<= {}"), "<": (lambda v, b: v < b, "< {}")}
#: fields of each class that are URLs
URL_FIELDS = {"ArchiveConfig": ("emdb_url", "pdb_url", "api_url")}


def _bad_value(value, rules) -> str | None:
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        for op, bound in rules:
            ok, text = _OPS[op]
            if not v == v or not ok(v, bound):  # NaN fails every rule
                return f"must be {text.format(bound)}, got {v:g}"
    return None


def problems(obj) -> list[tuple[str, str]]:
    """``(field, problem)`` of every rule a settings instance breaks (empty: all hold)."""
    return problems_in(type(obj).__name__, vars(obj))


def problems_in(name: str, values: dict) -> list[tuple[str, str]]:
    """``(field, problem)`` of every rule of settings class ``name`` that ``values`` (some of
    its fields) break."""
    out = []
    for f, rules in RULES.get(name, {}).items():
        if f in values:
            bad = _bad_value(values[f], rules)
            if bad:
                out.append((f, bad))
    for f in RANGES.get(name, ()):
        v = values.get(f)
        if isinstance(v, (tuple, list)) and len(v) == 2 and not v[0] < v[1]:
            out.append((f, f"low must be below high, got {v[0]:g}, {v[1]:g}"))
    if name == "SplitConfig" and "fractions" in values:
        fr = values["fractions"]
        if not isinstance(fr, dict) or any(not isinstance(v, (int, float)) or v < 0 for v in fr.values()):
            out.append(("fractions", "must map splits to fractions >= 0"))
        elif not sum(fr.values()) > 0:
            out.append(("fractions", f"must sum to more than 0, got {fr}"))
    if name == "TrainConfig" and "realism_params" in values:
        from ..prep.realism import realism_problems

        out += realism_problems(values["realism_params"])
    for f in URL_FIELDS.get(name, ()):
        problem = url_problem(values[f]) if f in values else None
        if problem:
            out.append((f, problem))
    if name == "ArchiveConfig" and not _PATH.fullmatch(str(values.get("cache", ""))):
        out.append(("cache", "has control characters"))
    return out


def url_problem(url: str) -> str | None:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        return (f"not an http(s):// URL with a host or a file:// URL without whitespace, quotes or shell "
                f"metacharacters: {url!r}")
    return None


def check_url(where: str, url: str) -> str:
    from ..errors import InputError

    problem = url_problem(url)
    if problem:
        raise InputError(where, problem)
    return url


def check_path(where: str, path: str, *, must_exist: bool = False) -> str:
    """A path from a config: no control characters; with ``must_exist``, an existing file."""
    import os

    from ..errors import InputError

    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise InputError(where, f"path has control characters: {path!r}")
    if path.startswith("-"):
        raise InputError(where, f"path starts with '-' (it would read as an option): {path!r}")
    if must_exist and path and not os.path.exists(path):
        raise InputError(where, f"no such file: {path!r}")
    return path


def check(obj, where=lambda field: field):
    """Raise :class:`cryosse.errors.InputError` for the first broken rule of a settings
    instance; ``where(field)`` names the culprit (a flag, a config key or a file)."""
    from ..errors import InputError

    bad = problems(obj)
    if bad:
        f, problem = bad[0]
        raise InputError(where(f), problem)
    return obj


"""What every subcommand shares: the help layout (each option's default shown, an example at
the end), options derived from a stage's settings dataclass (its defaults are the only ones),
``--config FILE`` (a stage's settings as JSON or YAML, overridden by flags given), hidden
aliases of old spellings, and one-line reporting."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from ..errors import InputError
from ..io import rules

__all__ = ["HelpFormatter", "add_command", "field_option", "config_option", "settings", "output_option",
           "alias", "floats", "strings", "say", "default_of", "memory_option", "memory_budget"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help (not for flags and options without one); the
    description (wrapped when the command is registered) and the example kept as written."""

    def _get_help_string(self, action):
        if action.default in (None, False) or isinstance(action.default, (list, tuple)) and not action.default:
            return action.help
        return super()._get_help_string(action)


def say(msg: str) -> None:
    """A progress or result line for people (stderr, so stdout stays for tables)."""
    print(msg, file=sys.stderr, flush=True)


def add_command(sub, name: str, help: str, description: str, example: str, func):
    """A subcommand with its description and an example (``example`` lines, without the
    ``cryosse`` prefix)."""
    epilog = "example:\n" + "\n".join(f"  cryosse {line}" for line in example.strip().splitlines())
    p = sub.add_parser(name, help=help, description=textwrap.fill(" ".join(description.split()), 92), epilog=epilog,
                       formatter_class=HelpFormatter)
    p.set_defaults(func=func, _required_output=None)
    return p


def default_of(cls, name: str):
    """The default of field ``name`` of dataclass ``cls`` (the only place defaults live)."""
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if f is None:
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def _shown(v) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items())
    return str(v)


def field_option(p, cls, name: str, *flags: str, help: str, **kw):
    """An option for field ``name`` of settings ``cls``: its default is the field's, shown in
    the help; a flag given on the command line overrides ``--config`` (see :func:`settings`)."""
    d = default_of(cls, name)
    p.set_defaults(**{f"_flag_{name}": next(f for f in flags if f.startswith("--"))})  # named in errors
    if kw.get("action") == "store_true":
        return p.add_argument(*flags, dest=name, default=argparse.SUPPRESS, help=help, **kw)
    if "metavar" not in kw and "choices" not in kw:  # --zone-radius ZONE_RADIUS, not the field's name
        kw["metavar"] = next(f for f in flags if f.startswith("--"))[2:].replace("-", "_").upper()
    return p.add_argument(*flags, dest=name, default=argparse.SUPPRESS,
                          help=f"{help} (default: {_shown(d) if d is not None else 'none'})", **kw)


def alias(p, *flags: str, dest: str, **kw):
    """A hidden old spelling of an option (same destination)."""
    return p.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)


def output_option(p, help: str, *old: str):
    """``-o/--output`` (required), with hidden old spellings ``old``."""
    p.add_argument("-o", "--output", help=f"{help} (required)")
    for flag in old:
        alias(p, flag, dest="output")
    p.set_defaults(_required_output=True)


def memory_option(p, default: str | None = None):
    """``--max-memory-gb``: the budget the command's memory plan (:mod:`cryosse.io.budget`) is
    checked against before any data is read; ``default`` describes a command's own default."""
    from ..io.budget import DEFAULT_MEMORY_GB

    p.add_argument("--max-memory-gb", type=float, default=None, metavar="GB",
                   help="memory budget: the peak estimated from the map headers (and a model's extent) must "
                        f"fit, else the command stops before reading the data (default: the --config file's "
                        f"max_memory_gb, else {default or f'{DEFAULT_MEMORY_GB:g}'})")


def memory_budget(a, default: float | None = None) -> float:
    """The budget: ``--max-memory-gb``, else ``max_memory_gb`` of the ``--config`` file, else
    ``default``, else :data:`cryosse.io.budget.DEFAULT_MEMORY_GB` (> 0, the culprit named when not)."""
    from ..io.budget import DEFAULT_MEMORY_GB

    gb, where = a.max_memory_gb, "--max-memory-gb"
    if gb is None and getattr(a, "config", None):
        gb, where = _read_config(a.config).get("max_memory_gb"), f"{a.config}: max_memory_gb"
    if gb is None:
        return DEFAULT_MEMORY_GB if default is None else default
    if isinstance(gb, bool) or not isinstance(gb, (int, float)) or not gb > 0:
        raise InputError(where, f"must be a number > 0, got {gb!r}")
    return float(gb)


def config_option(p):
    p.add_argument("--config", metavar="FILE",
                   help="the stage's settings as JSON or YAML (keys as in config.yaml); options given "
                        "on the command line override it")


def floats(n: int | None = None, what: str = "numbers"):
    """An argparse type: comma-separated floats (exactly ``n`` of them when given)."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        if (n is not None and len(vals) != n) or not vals:
            raise argparse.ArgumentTypeError(f"expected {n or 'some'} comma-separated {what}, got {text!r}")
        return vals
    return parse


def strings(text: str) -> tuple[str, ...]:
    """An argparse type: a comma-separated list."""
    return tuple(v for v in text.split(",") if v)


def _read_config(path: str) -> dict:
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
        try:
            doc = json.loads(text)  # JSON first: YAML 1.1 reads 1e-05 as a string
        except ValueError:
            doc = yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputError(p, f"not a readable settings file ({' '.join(str(exc).split())})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(p, "settings must be a mapping of names to values")
    return doc


def _coerce(cls, name: str, value):
    d = default_of(cls, name)
    if isinstance(d, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(d, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


#: keys any stage's settings file may hold: the memory budget (:func:`memory_budget`)
COMMON_KEYS = ("max_memory_gb",)


def settings(args, *classes, ignore: tuple[str, ...] = ()):
    """Instances of the settings ``classes`` from their defaults, ``--config`` and the flags
    given (in that order of precedence, lowest first). Keys of the file that no class has (and
    that are not in ``ignore``) are refused, naming the file."""
    values = [{} for _ in classes]
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    if getattr(args, "config", None):
        doc = _read_config(args.config)
        for key, v in doc.items():
            hit = [k for k, n in enumerate(names) if key in n]
            if not hit and key not in ignore and key not in COMMON_KEYS:
                known = sorted(set().union(*names))
                raise InputError(args.config, f"unknown setting {key!r} (known: {', '.join(known)})")
            for k in hit:
                values[k][key] = _coerce(classes[k], key, v)
    for k, cls in enumerate(classes):
        for name in names[k]:
            if hasattr(args, name):
                values[k][name] = _coerce(cls, name, getattr(args, name))
    out = []
    for cls, v in zip(classes, values):
        bad = rules.problems_in(cls.__name__, v)  # before construction, which may check too
        if bad:
            raise InputError(_culprit(args, bad[0][0]), bad[0][1])
        try:
            obj = cls(**v)
        except (TypeError, ValueError) as exc:
            raise InputError(getattr(args, "config", None) or args.command, str(exc)) from None
        out.append(rules.check(obj, lambda f: _culprit(args, f)))
    return out[0] if len(out) == 1 else tuple(out)


def _culprit(args, name: str) -> str:
    """Who set field ``name``: its flag when given on the command line, else the --config file."""
    flag = getattr(args, f"_flag_{name}", None)
    if hasattr(args, name) and flag:
        return flag
    if getattr(args, "config", None):
        return f"{args.config}: {name}"
    return flag or name

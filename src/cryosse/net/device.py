"""Where the network runs: the one rule for ``auto`` that training and prediction share."""
from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(name: str | None) -> str:
    """``cuda`` when a GPU is available and ``name`` is ``auto``, empty or None, else ``cpu``;
    any other name (``cpu``, ``cuda``, ``cuda:1``) as given."""
    if name in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name

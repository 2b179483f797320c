"""Input and output shared by every stage: maps (:mod:`.maps`), atomic models (:mod:`.models`)
and atomic writes of tables, JSON, text and figures (:mod:`.files`)."""
from .files import atomic_path, pyplot, read_tsv, write_json, write_png, write_text, write_tsv
from .maps import Map, read_map, write_map, write_map_mmap
from .models import ProteinAtoms, model_report, protein_atoms, read_model

__all__ = [
    "Map", "read_map", "write_map", "write_map_mmap", "read_model", "model_report", "ProteinAtoms", "protein_atoms",
    "atomic_path", "write_text", "write_json", "write_tsv", "read_tsv", "pyplot", "write_png",
]

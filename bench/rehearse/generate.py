"""Write a rehearsal archive (cryosse.research.rehearse): ``python bench/rehearse/generate.py
OUT --entries 300 --template ../shared/data/emdb_headers/emd-0001.xml [--scale 1.0]``, from the
embedded and extra structures. Prints entries, disk, and the time it took."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from cryosse.prep.structures import load_structures  # noqa: E402
from cryosse.research.rehearse import write_archive  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--template", required=True, help="a real EMDB v3 header (e.g. EMD-0001's)")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink every box (short rehearsal)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    paths = [e.path for t in (ROOT / "src/cryosse/data/structures/structures.tsv",
                              ROOT / "resources/structures_extra/structures.tsv") if t.is_file()
             for e in load_structures(t)]
    t = time.perf_counter()
    recs = write_archive(a.out, a.entries, paths, a.template, a.seed, a.scale)
    disk = sum(r.get("disk_bytes", 0) for r in recs)
    print(f"{len(recs)} entries ({sum(r['missing'] for r in recs)} missing, "
          f"{sum(r['status'] != 'REL' for r in recs)} obsolete/withdrawn, {sum(r['oversized'] for r in recs)} "
          f"oversized) in {time.perf_counter() - t:.0f} s; {disk / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

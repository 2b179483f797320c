"""Reading real-world maps and models, and clear one-line errors for bad input."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryosse.errors import InputError
from cryosse.io import Map, read_map, read_model, write_map


def _ramp_map(shape=(6, 7, 8)) -> Map:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Map(data, (1.5, 1.5, 1.5), (3.0, -4.5, 6.0))


def test_axis_order_is_normalised(tmp_path):
    """A map stored with sections along x (mapc/mapr/maps = 3, 2, 1) reads back in x, y, z."""
    m = _ramp_map()
    path = tmp_path / "zyx.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(m.data.transpose(2, 1, 0)))  # [x, y, z] on disk
        mrc.voxel_size = 1.5
        h = mrc.header
        h.mapc, h.mapr, h.maps = 3, 2, 1
        h.nxstart, h.nystart, h.nzstart = 4, -3, 2  # columns run along z, sections along x
    back = read_map(path)
    assert back.data.shape == m.data.shape
    assert np.array_equal(back.data, m.data)
    assert back.origin_a == pytest.approx((2 * 1.5, -3 * 1.5, 4 * 1.5))


def test_gzipped_and_int16_maps(tmp_path):
    m = _ramp_map()
    raw = tmp_path / "m.mrc"
    with mrcfile.new(raw) as mrc:
        mrc.set_data(m.data.astype(np.int16))
        mrc.voxel_size = 1.5
    gz = tmp_path / "m.mrc.gz"
    with open(raw, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    back = read_map(gz)
    assert back.data.dtype == np.int16 and np.array_equal(back.data, m.data.astype(np.int16))


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves the previous file intact and no temporary file behind."""
    m = _ramp_map()
    path = tmp_path / "out.mrc"
    write_map(m, path)
    before = path.read_bytes()
    import cryosse.io as io_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(mrcfile.mrcfile.MrcFile, "update_header_stats", boom)
    with pytest.raises(RuntimeError):
        io_mod.write_map(m.with_data(m.data * 2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]


def _one_line_error(exc: InputError, path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg


def test_truncated_map(tmp_path):
    m = _ramp_map((20, 20, 20))
    path = tmp_path / "full.mrc"
    write_map(m, path)
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError) as err:
        read_map(cut)
    _one_line_error(err.value, cut)


def test_map_with_nan(tmp_path):
    m = _ramp_map()
    data = m.data.copy()
    data[1, 2, 3] = np.nan
    path = tmp_path / "nan.mrc"
    write_map(m.with_data(data), path)
    with pytest.raises(InputError, match="NaN"):
        read_map(path)


def test_text_file_named_cif(tmp_path):
    path = tmp_path / "model.cif"
    path.write_text("this is not a structure\njust some text\n")
    with pytest.raises(InputError) as err:
        read_model(path)
    _one_line_error(err.value, path)


def test_model_without_protein(tmp_path):
    path = tmp_path / "water.pdb"
    path.write_text(
        "HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 20.00           O\n"
        "HETATM    2  O   HOH A   2      12.000  10.000  10.000  1.00 20.00           O\nEND\n")
    with pytest.raises(InputError, match="no protein") as err:
        read_model(path)
    _one_line_error(err.value, path)


def test_model_cleanup(structures_dir):
    st = read_model(structures_dir / "1a28.pdb.gz")
    assert len(st) == 1
    names = {r.name for ch in st[0] for r in ch}
    assert "HOH" not in names
    assert all(not a.is_hydrogen() for ch in st[0] for r in ch for a in r)


@pytest.mark.parametrize("args, expect", [
    (["simulate", "{cif}", "-o", "{out}/x.mrc"], "{cif}"),
    (["label", "{pdb}", "{cut}", "-o", "{out}/l.mrc"], "{cut}"),
    (["sse", "{water}", "-o", "{out}/s.tsv"], "{water}"),
])
def test_cli_one_line_errors(tmp_path, structures_dir, args, expect):
    """The CLI prints one line naming the bad file, exits 2 and writes no output."""
    files = {"cif": tmp_path / "bad.cif", "cut": tmp_path / "cut.mrc", "water": tmp_path / "water.pdb",
             "pdb": structures_dir / "1a8o.pdb.gz", "out": tmp_path / "out"}
    files["cif"].write_text("not a model\n")
    files["cut"].write_bytes(b"\0" * 300)
    files["water"].write_text("HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 20.00           O\nEND\n")
    argv = [a.format(**files) for a in args]
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", *argv], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryosse: error: ")
    assert expect.format(**files) in lines[0]
    assert not files["out"].exists() or not any(files["out"].iterdir())


def test_outputs_get_the_usual_file_mode(tmp_path):
    import os
    import stat
    write_map(_ramp_map(), tmp_path / "m.mrc")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.mrc").stat().st_mode) == 0o666 & ~umask

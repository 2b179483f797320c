"""Build a local copy of the EMDB and PDB archive layouts from real files, for the fetch tests
and the online workflow test: maps gzipped as ``emd_NNNN.map.gz``, headers written in the EMDB
v3 header schema, models as gzipped mmCIF under ``mmCIF/<middle two characters>/``."""
from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import gemmi
import mrcfile
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = ROOT / "src" / "cryosse" / "data" / "structures"

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<emd xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" emdb_id="EMD-{n}" version="3.0.11.3" xsi:noNamespaceSchemaLocation="https://ftp.ebi.ac.uk/pub/databases/emdb/doc/XML-schemas/emdb-schemas/current_v3/emdb.xsd">
  <admin>
    <current_status>
      <date>2011-03-02</date>
      <code>{status}</code>
      <processing_site>PDBe</processing_site>
    </current_status>
    <sites>
      <deposition>PDBe</deposition>
      <last_processing>PDBe</last_processing>
    </sites>
    <key_dates>
      <deposition>2009-12-01</deposition>
      <header_release>2010-01-12</header_release>
      <map_release>2010-01-12</map_release>
      <update>2011-03-02</update>
    </key_dates>
    <title>{title}</title>
    <authors_list>
      <author>Test A</author>
    </authors_list>
  </admin>
  <crossreferences>
    <citation_list>
      <primary_citation>
        <journal_citation published="true">
          <author order="1">Test A</author>
          <title>Test citation</title>
          <journal_abbreviation>Nature</journal_abbreviation>
          <year>2010</year>
        </journal_citation>
      </primary_citation>
    </citation_list>
    <pdb_list>{pdb_refs}
    </pdb_list>
  </crossreferences>
  <sample>
    <name>{title}</name>
    <supramolecule_list>
      <complex_supramolecule supramolecule_id="1">
        <name>{title}</name>
        <parent>0</parent>
      </complex_supramolecule>
    </supramolecule_list>
  </sample>
  <structure_determination_list>
    <structure_determination structure_determination_id="1">
      <method>singleParticle</method>
      <aggregation_state>particle</aggregation_state>
      <specimen_preparation_list>
        <single_particle_preparation preparation_id="1">
          <buffer>
            <ph>7.5</ph>
          </buffer>
        </single_particle_preparation>
      </specimen_preparation_list>
      <microscopy_list>
        <single_particle_microscopy microscopy_id="1">
          <microscope>FEI TITAN KRIOS</microscope>
          <illumination_mode>FLOOD BEAM</illumination_mode>
          <imaging_mode>BRIGHT FIELD</imaging_mode>
          <electron_source>FIELD EMISSION GUN</electron_source>
          <acceleration_voltage units="kV">300</acceleration_voltage>
          <image_recording_list>
            <image_recording image_recording_id="1">
              <film_or_detector_model>GATAN K2 SUMMIT (4k x 4k)</film_or_detector_model>
            </image_recording>
          </image_recording_list>
        </single_particle_microscopy>
      </microscopy_list>
      <singleparticle_processing image_processing_id="1">
        <image_recording_id>1</image_recording_id>
        <final_reconstruction>
          <applied_symmetry>
            <point_group>C1</point_group>
          </applied_symmetry>
          <resolution res_type="BY AUTHOR" units="\u212b">{resolution}</resolution>
          <resolution_method>FSC 0.143 CUT-OFF</resolution_method>
        </final_reconstruction>
      </singleparticle_processing>
    </structure_determination>
  </structure_determination_list>
  <map format="CCP4" size_kbytes="{kbytes}">
    <file>emd_{n}.map.gz</file>
    <symmetry>
      <space_group>1</space_group>
    </symmetry>
    <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
    <dimensions>
      <col>{nx}</col>
      <row>{ny}</row>
      <sec>{nz}</sec>
    </dimensions>
    <origin>
      <col>0</col>
      <row>0</row>
      <sec>0</sec>
    </origin>
    <spacing>
      <x>{nx}</x>
      <y>{ny}</y>
      <z>{nz}</z>
    </spacing>
    <cell>
      <a units="\u212b">{ca:.3f}</a>
      <b units="\u212b">{cb:.3f}</b>
      <c units="\u212b">{cc:.3f}</c>
      <alpha units="deg">90.0</alpha>
      <beta units="deg">90.0</beta>
      <gamma units="deg">90.0</gamma>
    </cell>
    <axis_order>
      <fast>Y</fast>
      <medium>X</medium>
      <slow>Z</slow>
    </axis_order>
    <statistics>
      <minimum>{dmin:.4f}</minimum>
      <maximum>{dmax:.4f}</maximum>
      <average>{dmean:.4f}</average>
      <std>{dstd:.4f}</std>
    </statistics>
    <pixel_spacing>
      <x units="\u212b">{vx:.4f}</x>
      <y units="\u212b">{vy:.4f}</y>
      <z units="\u212b">{vz:.4f}</z>
    </pixel_spacing>
    <contour_list>{contours}
    </contour_list>
    <label>::::EMDATABANK.org::::EMD-{n}::::</label>
  </map>
</emd>
"""

PDB_REF = """
      <pdb_reference>
        <pdb_id>{pdb}</pdb_id>
        <relationship>
          <in_frame>FULLOVERLAP</in_frame>
        </relationship>
      </pdb_reference>"""

CONTOUR = """
      <contour primary="{primary}">
        <level>{level}</level>
        <source>{source}</source>
      </contour>"""


@dataclass(frozen=True)
class ArchiveEntry:
    emdb: str              # EMD-NNNN
    pdb: str
    map: Path              # local MRC (plain or .gz)
    model: Path            # local PDB/mmCIF (plain or .gz)
    resolution_a: float
    contour: float
    status: str = "REL"
    primary: str = "true"          # how the header spells the primary contour (xs:boolean: true or 1)
    decoy_contour: bool = False    # a non-primary contour listed before the primary one
    header_pdb: str = ""           # the fitted model's id as the header lists it (default pdb)
    kbytes: int | None = None      # map/@size_kbytes (default: the map's real size)
    cif_magic: bool = False        # the mmCIF begins with the "#\#CIF_1.1" magic comment line


def size_kbytes(nbytes: int) -> int:
    """``map/@size_kbytes`` as the EMDB writes it: the data size in kB of 1000 bytes (EMD-0001:
    256³ float32 -> 67109)."""
    return max(1, round(nbytes / 1000))


def contour_for(data: np.ndarray) -> float:
    """A stand-in for the author's recommended level: mean + 1.5 standard deviations."""
    return float(data.mean() + 1.5 * data.std())


def header_xml(e: ArchiveEntry) -> str:
    with mrcfile.open(e.map, permissive=True) as mrc:
        h = mrc.header
        d = np.asarray(mrc.data, dtype=np.float32)
        voxel = mrc.voxel_size
    nz, ny, nx = d.shape
    n = e.emdb[4:]
    contours = CONTOUR.format(primary=e.primary, level=e.contour, source="AUTHOR")
    if e.decoy_contour:
        decoy = CONTOUR.format(primary="false" if e.primary == "true" else "0", level=e.contour * 3, source="EMDB")
        contours = decoy + contours
    pdb = e.header_pdb or e.pdb.upper()
    return HEADER.format(
        n=n, status=e.status, title=f"Test map {e.emdb} fitted with {e.pdb}",
        pdb_refs=PDB_REF.format(pdb=pdb), resolution=e.resolution_a, contours=contours,
        kbytes=e.kbytes or size_kbytes(d.nbytes), nx=nx, ny=ny, nz=nz, ca=float(h.cella.x), cb=float(h.cella.y),
        cc=float(h.cella.z), dmin=float(d.min()), dmax=float(d.max()), dmean=float(d.mean()),
        dstd=float(d.std()), vx=float(voxel.x), vy=float(voxel.y), vz=float(voxel.z))


def _gzip_to(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.name.endswith(".gz"):
        shutil.copyfile(src, dest)
        return
    with open(src, "rb") as fi, gzip.open(dest, "wb", compresslevel=1) as fo:
        shutil.copyfileobj(fi, fo)


def model_to_cif_gz(src: Path, dest: Path, magic: bool = False) -> None:
    """The model as the PDB archives serve it: gzipped mmCIF (``data_<ID>`` first, or after the
    ``#\\#CIF_1.1`` magic comment and a blank comment line when ``magic``)."""
    st = gemmi.read_structure(str(src))
    st.setup_entities()
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = st.make_mmcif_document().as_string()
    with gzip.open(dest, "wt") as fh:
        fh.write(("#\\#CIF_1.1\n#\n" if magic else "") + text)


def build_archive(root: Path, entries: list[ArchiveEntry]) -> dict[str, Path]:
    """Write ``root/emdb/structures/…`` and ``root/pdb/mmCIF/<hash>/<id>.cif.gz`` (the divided
    layout); url path -> file."""
    files = {}
    for e in entries:
        n = e.emdb[4:]
        m = root / f"emdb/structures/EMD-{n}/map/emd_{n}.map.gz"
        _gzip_to(e.map, m)
        x = root / f"emdb/structures/EMD-{n}/header/emd-{n}.xml"
        x.parent.mkdir(parents=True, exist_ok=True)
        x.write_text(header_xml(e), encoding="utf-8")
        c = root / f"pdb/mmCIF/{e.pdb[-3:-1]}/{e.pdb}.cif.gz"
        if not c.is_file():
            model_to_cif_gz(e.model, c, magic=e.cif_magic)
        for f in (m, x, c):
            files["/" + str(f.relative_to(root))] = f
    return files


def search_rows(entries: list[ArchiveEntry], extra: list[dict] = ()) -> list[dict]:
    """The search index a test server answers queries from: one row per entry, fields named
    as the EMDB search API names them (``extra``: rows for entries not in the archive)."""
    rows = [{"emdb_id": e.emdb, "resolution": e.resolution_a, "fitted_pdbs": e.pdb.upper(),
             "title": f"Test map {e.emdb}", "release_date": "2010-01-12T00:00:00Z", "current_status": e.status,
             "structure_determination_method": "singleParticle", "xref_links": "pdb"} for e in entries]
    return rows + list(extra)


def simulated_map(path: Path, model: Path, resolution_a: float = 6.0, seed: int = 0) -> float:
    """An "experimental-like" map of ``model``: simulated at ``resolution_a``, with noise,
    interpolated onto anisotropic voxels (1.3, 1.4, 1.2 Å) and stored with columns along y
    (mapc/mapr/maps = 2, 1, 3) and the placement in the ``origin`` field. Returns a contour."""
    from cryosse.prep.density import resample_to_grid, simulate_density
    from cryosse.io import read_model

    sim = simulate_density(read_model(model), resolution_a, 1.0)
    rng = np.random.default_rng(seed)
    noisy = sim.with_data((sim.data + rng.normal(0, 0.15 * sim.data.std(), sim.data.shape)).astype(np.float32))
    voxel = np.array([1.3, 1.4, 1.2])
    shape = np.floor((np.array(sim.shape_xyz) - 1) / voxel).astype(int) + 1
    origin = np.array(sim.origin_a) + 0.37
    m = resample_to_grid(noisy, origin, voxel, shape, order=1)
    disk = np.ascontiguousarray(m.data.transpose(0, 2, 1))  # [z, x, y]: columns along y
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(disk)
        h = mrc.header
        h.mapc, h.mapr, h.maps = 2, 1, 3
        h.mx, h.my, h.mz = (int(v) for v in shape)
        h.cella = tuple(float(v) for v in voxel * shape)
        h.nxstart = h.nystart = h.nzstart = 0
        h.origin = tuple(float(v) for v in origin)
        mrc.update_header_stats()
    return contour_for(m.data)

"""Pictures and progress for people: the predict progress report (terminal bar, a line per 10 %
in a log, nothing with --quiet), preview.png of predict and evaluate, the training curve and
the thumbnails' colour key."""
from __future__ import annotations

import io
import json
import re

import numpy as np

from cryosse.cli import main
from cryosse.cli.progress import Progress
from cryosse.io import Map, write_map


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_lines_in_a_log_and_on_a_terminal():
    clock, log = _Clock(), io.StringIO()
    p = Progress("tiles", stream=log, tty=False, clock=clock)
    for done in range(0, 51):  # one tile per second
        p(done, 50)
        clock.t += 1
    lines = log.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ..., 100 %
    assert [int(re.search(r"(\d+)%", s).group(1)) for s in lines] == list(range(0, 101, 10))
    half = next(s for s in lines if " 50%" in s)
    assert "tiles 25/50" in half and "0:25 elapsed" in half and "ETA 0:25" in half
    term = io.StringIO()
    t = Progress("tiles", stream=term, tty=True, clock=_Clock())
    for done in range(0, 4):
        t(done, 3)
    out = term.getvalue()
    assert out.startswith("\r") and out.endswith("\n") and out.count("\n") == 1 and "3/3 100%" in out
    quiet = io.StringIO()
    q = Progress(stream=quiet, tty=False, quiet=True)
    for done in range(0, 5):
        q(done, 4)
    assert quiet.getvalue() == ""


def test_centre_of_mass_equals_scipy():
    from scipy import ndimage

    from cryosse.inference.preview import centre_of_mass

    rng = np.random.default_rng(2)
    d = rng.normal(size=(20, 30, 25)).astype(np.float32)
    d[3:8, 20:26, 2:6] += 5.0
    expected = np.rint(ndimage.center_of_mass(np.clip(d, 0, None))).astype(int)
    assert centre_of_mass(Map(d, (1.0,) * 3)) == tuple(expected)
    assert centre_of_mass(Map(-np.ones((4, 6, 8), np.float32), (1.0,) * 3)) == (2, 3, 4)


def _colour_pixels(png):
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    red = (r > 0.8) & (r - g > 0.3) & (r - b > 0.3)
    blue = (b > 0.6) & (b - r > 0.25)
    return img.shape, int(red.sum()), int(blue.sum())


def test_predict_writes_preview_and_reports_progress(tmp_path, checkpoint, capsys):
    rng = np.random.default_rng(3)
    write_map(Map(rng.normal(size=(48, 40, 44)).astype(np.float32), (1.0,) * 3, (5.0, -3.0, 2.0)), tmp_path / "m.mrc")
    cmd = ["predict", str(tmp_path / "m.mrc"), "--checkpoint", str(checkpoint), "--tile", "16", "--device", "cpu"]
    assert main(cmd + ["-o", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err  # not a terminal: a line per 10 %
    tiles = [s for s in err.splitlines() if " tiles " in s]
    assert len(tiles) >= 3 and "100%" in tiles[-1] and "ETA" in tiles[-1] and len(tiles) <= 11
    total = int(re.search(r"tiles \d+/(\d+)", tiles[-1]).group(1))
    assert total > 1 and f"tiles {total}/{total}" in tiles[-1] and "tiles 0/" in tiles[0]
    png = tmp_path / "p" / "preview.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "p" / "summary.json").read_text())  # still written, last
    assert main(cmd + ["--quiet", "-o", str(tmp_path / "q")]) == 0
    assert capsys.readouterr().err == "" and (tmp_path / "q" / "preview.png").is_file()


def test_preview_draws_helix_red_and_sheet_blue(tmp_path):
    """Labels placed at the centre of mass show up red (helix) and blue (sheet) in the picture,
    and a truth adds a row."""
    from cryosse.inference.preview import write_preview

    d = np.zeros((40, 40, 40), np.float32)
    d[15:25, 15:25, 15:25] = 1.0
    lab = np.zeros(d.shape, np.int8)
    lab[15:25, 15:25, 15:20] = 1
    lab[15:25, 15:25, 20:25] = 2
    dens = Map(d, (1.5,) * 3, (-10.0, 0.0, 4.0))
    write_preview(tmp_path / "one.png", dens, dens.with_data(lab), title="cube")
    shape1, red, blue = _colour_pixels(tmp_path / "one.png")
    assert red > 200 and blue > 200  # legend patches alone are ~ 50 pixels each
    none = dens.with_data(np.zeros_like(lab))
    write_preview(tmp_path / "none.png", dens, none)
    _, red0, blue0 = _colour_pixels(tmp_path / "none.png")
    assert red0 < red / 4 and blue0 < blue / 4
    write_preview(tmp_path / "two.png", dens, none, truth=dens.with_data(lab))
    shape2, _, _ = _colour_pixels(tmp_path / "two.png")
    assert shape2[0] > 1.6 * shape1[0]


def test_evaluate_preview_true_vs_predicted(tmp_path):
    d = np.zeros((24, 24, 24), np.float32)
    d[8:16, 8:16, 8:16] = 1
    lab = np.zeros(d.shape, np.int8)
    lab[8:16, 8:16, 8:12] = 1
    m = Map(d, (1.0,) * 3)
    write_map(m, tmp_path / "d.mrc")
    write_map(m.with_data(lab), tmp_path / "t.mrc", labels=True)
    write_map(m.with_data(np.zeros_like(lab)), tmp_path / "p.mrc", labels=True)
    args = ["evaluate", "--prediction", str(tmp_path / "p.mrc"), "--truth", str(tmp_path / "t.mrc")]
    assert main(args + ["--density", str(tmp_path / "d.mrc"), "--preview", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args + ["--preview", str(tmp_path / "w.png")]) == 2 and not (tmp_path / "w.png").exists()


def test_training_curve_has_every_step_and_f1_axis(tmp_path):
    from cryosse.train.curve import plot_curve, write_step_losses

    recs = [{"step": s, "train_loss": 1.0 / s, "val_helix_f1": 0.1 * k, "val_sheet_f1": 0.05 * k,
             "val_other_f1": 0.9} for k, s in enumerate((10, 20, 30), start=1)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    write_step_losses(tmp_path / "loss.tsv", [(s, 2.0 / s) for s in range(1, 31)])
    import matplotlib.figure

    saved = {}
    orig = matplotlib.figure.Figure.savefig

    def keep(fig, *a, **k):
        saved["fig"] = fig
        return orig(fig, *a, **k)

    matplotlib.figure.Figure.savefig = keep
    try:
        plot_curve(tmp_path / "metrics.jsonl", tmp_path / "c.png", tmp_path / "loss.tsv")
    finally:
        matplotlib.figure.Figure.savefig = orig
    fig = saved["fig"]
    loss_ax, f1_ax = fig.axes[0], fig.axes[1]
    every = next(line for line in loss_ax.lines if "every step" in line.get_label())
    assert list(every.get_xdata()) == list(range(1, 31))
    assert f1_ax.get_ylim() == (0, 1) and {line.get_label() for line in f1_ax.lines} >= {
        "validation F1 helix", "validation F1 sheet", "validation F1 other"}
    # the legend sits outside the plotting area: right of the F1 axis
    fig.canvas.draw()
    legend = loss_ax.get_legend().get_window_extent()
    assert legend.x0 > f1_ax.get_window_extent().x1


def test_preview_zooms_to_the_density():
    from cryosse.inference.preview import density_box

    d = np.zeros((60, 60, 60), np.float32)
    d[10:20, 30:40, 5:15] = 1.0
    lo, hi = density_box(Map(d, (1.0,) * 3))
    grow = 60 // 10 + 4
    assert lo.tolist() == [10 - grow, 30 - grow, 0] and hi.tolist() == [20 + grow, 40 + grow, 15 + grow]
    lo, hi = density_box(Map(np.ones((8, 8, 8), np.float32), (1.0,) * 3))  # nothing stands out
    assert lo.tolist() == [0, 0, 0] and hi.tolist() == [8, 8, 8]

"""Map widgets side by side in one headless-browser run: first frame and lasso -> Python latency.

Compares, on the same points and the same lasso path, in JupyterLab 4 driven by Debian's chromium
(WebGL through SwiftShader, so absolute times are slow; compare the ratios):

- dataexplore.Explorer
- jupyter-scatter (``pip install jupyter-scatter``; installed only for this benchmark)
- plotly FigureWidget with Scattergl (100k points only; at 1M it does not deliver selections)

Measured per widget and size, median of ``--repeat`` runs:

- first frame: from the moment the cell starts building the widget (time taken in the kernel) to
  the moment the map's area shows drawn points (screenshots polled from the test process);
- lasso -> Python: from mouse-up of a lasso drawn with the mouse to the moment the widget's Python
  selection observer runs (time taken in the kernel), and how many points it received; for two
  lassos, one after the other: a smooth circle (about 80 vertices), then a hand-drawn one of about
  400 (the most the browser sends), the shape of ``benchmarks/lasso.py``'s ``hand-drawn``, which
  times the kernel's part alone.

Run::

    .venv/bin/pip install jupyter-scatter
    .venv/bin/python benchmarks/widget.py --sizes 100000 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lasso import hand_drawn  # noqa: E402
from tests.browser.harness import launch_browser, open_and_run, start_lab, write_notebook  # noqa: E402

SETUP = """import json, os, time
import numpy as np
rng = np.random.default_rng(0)
N = {n}
centers = rng.normal(scale=6, size=(20, 2))
xy = (centers[rng.integers(0, 20, N)] + rng.normal(size=(N, 2))).astype(np.float32)
OUT = {out!r}
def record(kind, n, **extra):
    with open(OUT + "." + kind + ".tmp", "w") as f:
        json.dump({{"t": time.time(), "n": int(n), **extra}}, f)
    os.replace(OUT + "." + kind + ".tmp", OUT + "." + kind)
{imports}"""

WIDGETS = {
    "dataexplore": ("import dataexplore as dx", """record("start", N)
w = dx.Explorer(xy, height=500)
w.on_select(lambda s: record("select", len(s), vertices=0 if s.polygon is None else len(s.polygon)))
w"""),
    "jupyter-scatter": ("import jscatter, pandas as pd", """record("start", N)
sc = jscatter.Scatter(data=pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}), x="x", y="y", height=500)
sc.mouse(mode="lasso")
sc.widget.observe(lambda ch: record("select", len(ch["new"]) if ch["new"] is not None else 0), names="selection")
sc.show()"""),
    "plotly": ("import plotly.graph_objects as go", """record("start", N)
fig = go.FigureWidget(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", marker={"size": 3}))
fig.update_layout(dragmode="lasso", height=500, margin=dict(l=10, r=10, t=10, b=10))
fig.data[0].on_selection(lambda trace, points, selector: record("select", len(points.point_inds)))
fig"""),
}
# where each widget draws, and what to drag on
AREA = {"dataexplore": ".dx-stage", "jupyter-scatter": ".jp-OutputArea-output canvas", "plotly": ".nsewdrag"}


def _drawn(page, selector) -> bool:
    """Whether the map's area shows points: over 3% of its pixels differ clearly from its most common
    colour (the background, whatever it is; grid lines and axes stay under that share)."""
    from PIL import Image

    loc = page.locator(selector).first
    if loc.count() == 0 or not loc.is_visible():
        return False
    img = np.asarray(Image.open(io.BytesIO(loc.screenshot(animations="disabled"))).convert("RGB")).reshape(-1, 3)
    colors, counts = np.unique(img, axis=0, return_counts=True)
    background = colors[np.argmax(counts)].astype(int)
    return (np.abs(img.astype(int) - background).max(axis=1) > 24).mean() > 0.03


def _wait_file(path: Path, after: float, timeout: float) -> dict | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            data = json.loads(path.read_text())
            if data["t"] >= after:
                return data
        time.sleep(0.01)
    return None


def _lasso(page, out: str, path, steps: int) -> tuple[float | None, int | None, int | None]:
    """Draw ``path`` with the mouse; (mouse-up -> Python observer, points it received, polygon
    vertices it received where the widget tells)."""
    page.mouse.move(*path[0])
    page.mouse.down()
    for p in path[1:]:
        page.mouse.move(*p, steps=steps)
    t_up = time.time()
    page.mouse.up()
    sel = _wait_file(Path(f"{out}.select"), t_up, 120)
    page.wait_for_timeout(200)
    return (sel["t"] - t_up, sel["n"], sel.get("vertices")) if sel else (None, None, None)


def run_one(browser, lab, widget: str, n: int, run: int) -> dict:
    out = lab["root"] / f"{widget}-{n}-{run}"
    name = f"{widget}-{n}-{run}.ipynb"
    imports, cell = WIDGETS[widget]
    write_notebook(lab["root"] / name, [SETUP.format(n=n, out=str(out), imports=imports), cell])
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        t_begin = time.time()
        open_and_run(page, lab, name)
        start = _wait_file(Path(f"{out}.start"), t_begin, 300)
        if start is None:
            return {"error": "the cell never ran"}
        area = AREA[widget]
        page.wait_for_selector(area, timeout=300_000)
        page.locator(area).first.scroll_into_view_if_needed()
        while not _drawn(page, area):
            if time.time() - start["t"] > 300:
                return {"error": "never drew"}
            time.sleep(0.05)
        first_frame = time.time() - start["t"]
        time.sleep(1.0)
        # the same lassos for every widget, a circle at 45% of the area's size around its centre:
        # smooth (40 mouse positions, 2 steps each), then hand-drawn (400 positions 2.5 px zigzag;
        # the browser keeps the moves 2 px apart or more: about 400 vertices)
        box = page.locator(area).first.bounding_box()
        cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, 0.22 * min(box["width"], box["height"])
        circle = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 40)]
        lat, count, _ = _lasso(page, str(out), circle, steps=2)
        jagged = [tuple(p) for p in hand_drawn(cx, cy, r, 2.5)]
        lat_j, count_j, vertices = _lasso(page, str(out), jagged + jagged[:1], steps=1)
        return {"first_frame_s": first_frame, "lasso_to_python_s": lat, "selected": count,
                "hand_drawn_to_python_s": lat_j, "hand_drawn_selected": count_j, "hand_drawn_vertices": vertices}
    finally:
        context.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--widgets", nargs="+", default=list(WIDGETS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plotly-max", type=int, default=100_000, help="largest size tried with plotly")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp, start_lab(Path(tmp)) as lab, launch_browser() as browser:
        for n in args.sizes:
            for widget in args.widgets:
                if widget == "plotly" and n > args.plotly_max:
                    continue
                runs = [run_one(browser, lab, widget, n, k) for k in range(args.repeat)]
                ok = [r for r in runs if "error" not in r]
                row = {"widget": widget, "n": n, "runs": runs}
                if ok:
                    row["first_frame_s"] = float(np.median([r["first_frame_s"] for r in ok]))
                    for key in ("lasso_to_python_s", "hand_drawn_to_python_s"):
                        lat = [r[key] for r in ok if r[key] is not None]
                        row[key] = float(np.median(lat)) if lat else None
                    row["selected"] = [r["selected"] for r in ok]
                    row["hand_drawn_selected"] = [r["hand_drawn_selected"] for r in ok]
                    row["hand_drawn_vertices"] = [r["hand_drawn_vertices"] for r in ok]
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
    print("\n| widget | points | first frame (s) | circle lasso -> Python (s) | selected | "
          "400-vertex lasso -> Python (s) | selected |")
    print("|---|---|---|---|---|---|---|")
    for row in results:
        ff = f"{row['first_frame_s']:.2f}" if "first_frame_s" in row else "failed"
        lat, lat_j = row.get("lasso_to_python_s"), row.get("hand_drawn_to_python_s")
        print(f"| {row['widget']} | {row['n']:,} | {ff} | {'never' if lat is None else f'{lat:.3f}'} | "
              f"{row.get('selected')} | {'never' if lat_j is None else f'{lat_j:.3f}'} | "
              f"{row.get('hand_drawn_selected')} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

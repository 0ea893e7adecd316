"""The object map in JupyterLab: points are boxes, hover shows the crop beside its image with the box
drawn, the export menu writes box tasks for the images of the selection, and the corrections come back."""

from __future__ import annotations

import json

import pytest

from .harness import ARTIFACTS, kernel_run, open_and_run, write_notebook
from .test_export_lab import _status_after

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_object_map_hover_export_boxes_and_corrections_back(lab, page, tmp_path):
    out = tmp_path / "exports"
    cells = [f"""import numpy as np, dataexplore as dx
objects = dx.fashion_scenes("test", 40, seed=3)
ex = dx.explore(objects, method="pca", color="label", export_dir={str(out)!r})
ex"""]
    write_notebook(lab["root"] / "objects.ipynb", cells)
    open_and_run(page, lab, "objects.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    widget = page.locator(".dx-explorer").first
    widget.scroll_into_view_if_needed()
    n = int(kernel_run(page, "print(len(objects))"))
    assert f"{n:,} points" in widget.locator(".dx-status").inner_text()

    # hover the point farthest from the others: the tooltip shows its id and crop + canvas side by side
    row, x, y = kernel_run(page, "d = np.linalg.norm(ex.xy[:, None] - ex.xy[None], axis=2); np.fill_diagonal(d, 9e9)\n"
                                 "k = int(d.min(1).argmax()); print(k, *ex.xy[k])").split()
    hx, hy = page.eval_on_selector(".dx-explorer", f"(el) => el.dxToPixel({x}, {y})")
    page.mouse.move(hx + 40, hy + 40)
    page.mouse.move(hx, hy, steps=3)
    tip = widget.locator(".dx-tooltip")
    tip.locator("img").wait_for(timeout=15_000)
    assert kernel_run(page, f"print(objects.ids[{row}])").strip() in tip.inner_text()
    width, height = page.eval_on_selector(".dx-tooltip img", "img => [img.naturalWidth, img.naturalHeight]")
    assert width == 2 * height  # the crop, then its canvas with the box drawn
    page.wait_for_function("() => document.querySelector('.dx-tooltip img')?.classList.contains('dx-wide')")
    shown = page.eval_on_selector(".dx-tooltip img", "img => img.getBoundingClientRect().width")
    assert shown >= 200  # shown twice as wide as an image's thumbnail, not squeezed into its square
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "objects-hover.png"))

    # select one class from the legend; the export menu offers box tasks, not image labels
    menu = widget.get_by_role("group", name="Export the selection")
    fmt = menu.get_by_role("combobox", name="Format")
    assert fmt.locator("option").all_inner_texts() == ["Query", "Label Studio boxes", "COCO boxes"]
    widget.locator(".dx-legend-row", has_text="Bag").click()
    page.wait_for_function("() => Number(document.querySelector('.dx-explorer').dataset.selected) > 0",
                           timeout=30_000)
    fmt.select_option(label="Label Studio boxes")
    menu.get_by_role("textbox", name="Name").fill("bags")
    state, text = _status_after(menu, menu.get_by_role("button", name="Save").click)
    assert state == "ok", text
    tasks = json.loads((out / "bags-label-studio-boxes" / "tasks.json").read_text())
    with_bags = kernel_run(page, "print(len(set(objects.table.loc[objects.table.label == 'Bag', 'image_id'])))")
    assert len(tasks) == int(with_bags)  # one task per canvas holding a selected bag, all its boxes in it
    assert all(r["type"] == "rectanglelabels" for t in tasks for p in t.get("predictions", []) for r in p["result"])

    # a labeler relabels the first box of the first task; the export comes back as corrections
    first = tasks[0]
    result = json.loads(json.dumps(first["predictions"][0]["result"]))
    result[0]["value"]["rectanglelabels"] = ["Sneaker"]
    export = [{"id": 1, "data": first["data"], "annotations": [
        {"id": 1, "completed_by": {"id": 3, "email": "ana@example.com"}, "was_cancelled": False,
         "created_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z", "result": result}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    summary = kernel_run(page, f"fixes = dx.import_boxes({str(tmp_path / 'export.json')!r}, objects)\n"
                               "print(fixes.summary().to_dict())\n"
                               "print(fixes.table.loc[fixes.table.status == 'relabelled', 'annotator'].tolist())")
    counts, who = summary.strip().splitlines()
    assert "'relabelled': 1" in counts and "'added': 0" in counts and "'deleted': 0" in counts
    assert "ana@example.com" in who
    assert page.locator(".dx-error").count() == 0 and page.dialogs == []

"""The export menu in JupyterLab: select, name, save as a query or a labeling batch; files land on disk,
the kernel holds the query, a taken name offers Overwrite."""

from __future__ import annotations

import json
import time

import pytest

from .harness import ARTIFACTS, kernel_run, open_and_run, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]
NAME = "odd dark boots"  # "d d", "a", "b", "o", "k" are notebook shortcuts: typed here they must be text


def _status_after(menu, action, timeout=60.0):
    """Do ``action`` (which sends an export) and return the state and text the status line shows for
    the reply; the menu must have shown "busy" in between."""
    menu.evaluate("m => { m.dxStates = []; m.dxWatch?.disconnect();"
                  " m.dxWatch = new MutationObserver(() => m.dxStates.push(m.dataset.state));"
                  " m.dxWatch.observe(m, { attributes: true, attributeFilter: ['data-state'] }); }")
    action()
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = menu.evaluate("m => m.dxStates")
        if states and states[-1] in ("ok", "error"):
            assert "busy" in states, states
            return states[-1], menu.locator(".dx-export-status").inner_text()
        time.sleep(0.05)
    raise AssertionError("the kernel never answered the export")


def test_export_menu_saves_query_and_label_studio_batch_and_overwrites(lab, page, tmp_path):
    out = tmp_path / "exports"
    cells = [f"""import dataexplore as dx
ex = dx.explore("fashion-mnist:test:500", color="label", export_dir={str(out)!r})
ex"""]
    write_notebook(lab["root"] / "export.ipynb", cells)
    open_and_run(page, lab, "export.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    widget = page.locator(".dx-explorer").first
    widget.scroll_into_view_if_needed()
    menu = widget.get_by_role("group", name="Export the selection")
    name = menu.get_by_role("textbox", name="Name")
    fmt = menu.get_by_role("combobox", name="Format")
    save = menu.get_by_role("button", name="Save")
    overwrite = menu.locator(".dx-export-overwrite")
    status = menu.get_by_role("status")
    assert fmt.locator("option").all_inner_texts() == ["Query", "Label Studio", "COCO", "CSV manifest"]
    assert save.is_disabled() and "Select points" in save.get_attribute("title")  # nothing selected yet

    # click a legend class: the name is suggested from the panel's most common label
    widget.locator(".dx-legend-row", has_text="Trouser").click()
    page.wait_for_function("() => Number(document.querySelector('.dx-explorer').dataset.selected) > 0",
                           timeout=30_000)
    n = int(widget.get_attribute("data-selected"))
    page.wait_for_function("() => document.querySelector('.dx-export-name').value === 'Trouser'", timeout=30_000)
    assert save.is_enabled() and overwrite.is_hidden()

    # type a name like a person would: the notebook's command-mode keys and the map's Esc stay out of it
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()
    name.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(NAME)
    page.keyboard.press("Escape")
    assert name.input_value() == NAME
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
    # Esc in the field did not clear the selection (the kernel answers in order: any clear came first)
    assert kernel_run(page, "print(len(ex.selection))").strip() == str(n)
    assert widget.get_attribute("data-selected") == str(n)

    # Query, with the Save button
    fmt.select_option(label="Query")
    state, text = _status_after(menu, save.click)
    query = out / "odd_dark_boots.dxq"
    assert state == "ok" and text.startswith(f"saved {n} images as query") and str(query) in text, text
    assert (query / "query.json").is_file()
    assert json.loads((query / "query.json").read_text())["name"] == NAME
    assert len((query / "ids.txt").read_text().split()) == n
    assert "dx-export-ok" in status.get_attribute("class")
    assert status.evaluate("e => getComputedStyle(e).color") != "rgb(187, 0, 0)"

    # Label Studio, with Enter in the name field
    fmt.select_option(label="Label Studio")
    state, text = _status_after(menu, lambda: name.press("Enter"))
    batch = out / "odd_dark_boots-label-studio"
    assert state == "ok" and "label-studio" in text and (batch / "tasks.json").is_file(), text
    assert len(json.loads((batch / "tasks.json").read_text())) == n

    # the same query name again: an error in red, and an Overwrite button that replaces it
    first_saved = (query / "query.json").stat().st_mtime_ns
    fmt.select_option(label="Query")
    state, text = _status_after(menu, save.click)
    assert state == "error" and "already exists" in text, text
    assert status.evaluate("e => getComputedStyle(e).color") == "rgb(187, 0, 0)"
    assert overwrite.is_visible() and overwrite.is_enabled()
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "export-menu-overwrite.png"))

    # a reply to some other request (stale) changes nothing
    kernel_run(page, 'ex.send({"type": "exported", "ok": True, "what": "coco", "name": "other", '
                     '"path": "/nowhere", "message": "stale reply", "exists": False})\n'
                     'ex.send({"type": "exported", "ok": True, "what": "query", "name": "Trouser", '
                     '"path": "/nowhere", "message": "stale reply", "exists": False})')
    time.sleep(1.0)
    assert "stale" not in status.inner_text() and overwrite.is_visible()

    # another selection: the Overwrite offered for the one before goes away; asked again, it comes back
    seq = widget.get_attribute("data-selection-seq")
    widget.locator(".dx-legend-row", has_text="Bag").click(modifiers=["Shift"])
    page.wait_for_function(f"() => document.querySelector('.dx-explorer').dataset.selectionSeq !== '{seq}'")
    assert overwrite.is_hidden() and status.inner_text() == ""
    assert name.input_value() == NAME  # a typed name stays
    widget.locator(".dx-legend-row", has_text="Trouser").click()
    page.wait_for_function(f"() => document.querySelector('.dx-explorer').dataset.selected === '{n}'")
    state, text = _status_after(menu, save.click)
    assert state == "error" and overwrite.is_visible()

    state, text = _status_after(menu, overwrite.click)
    assert state == "ok" and text.startswith(f"saved {n} images as query"), text
    assert overwrite.is_hidden() and (query / "query.json").stat().st_mtime_ns > first_saved
    widget.screenshot(path=str(ARTIFACTS / "export-menu.png"))

    # the kernel holds the query under the typed name, for the selection shown
    held = json.loads(kernel_run(page, "import json\nprint(json.dumps({'queries': list(ex.queries), "
                                       "'n': len(ex.selection), 'dir': str(ex.export_dir)}))"))
    assert held == {"queries": [NAME], "n": n, "dir": str(out)}
    assert not page.dialogs

"""The analysis notebooks in examples/ run headless and show what they say they show."""

from pathlib import Path

import pytest

from conftest import tracked_files_rewritten

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(name: str, tmp_path, monkeypatch, n: int = 2000):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("DATAEXPLORE_EXAMPLE_N", str(n))
    nb = nbformat.read(ROOT / "examples" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not tracked_files_rewritten(tmp_path), "the notebook rewrites files committed in examples/"
    return [c for c in nb.cells if c.cell_type == "code"]


def text_of(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream" and o.name == "stdout":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o["data"].get("text/plain", ""))
    return "\n".join(parts)


def cell_with(cells, snippet: str):
    return next(c for c in cells if snippet in c.source)


def has_output(cell, mime: str) -> bool:
    return any(mime in o.get("data", {}) for o in cell.outputs)


@pytest.mark.slow
def test_coverage_notebook_finds_the_missing_sandals(tmp_path, monkeypatch):
    cells = run_notebook("coverage.ipynb", tmp_path, monkeypatch)
    gaps = text_of(cell_with(cells, "cov = dx.coverage"))
    first_gap = gaps.splitlines()[1]
    assert "gap 1" in first_gap and "Sandal" in first_gap
    assert has_output(cell_with(cells, "cov.plot()"), "application/vnd.plotly.v1+json")
    assert has_output(cell_with(cells, "cov.exemplars(0)"), "image/png")
    assert has_output(cell_with(cells, "ex.show(cov)"), "application/vnd.jupyter.widget-view+json")
    selected = text_of(cell_with(cells, "ex.select_group(0)"))
    assert selected.splitlines()[1].startswith("Sandal")  # the selected gap is mostly sandals
    assert text_of(cell_with(cells, "cc.missing()")).strip() == "['sandal']"
    assert has_output(cell_with(cells, "cc.plot("), "application/vnd.plotly.v1+json")


@pytest.mark.slow
def test_failures_notebook_trains_a_probe_and_ranks_its_failure_slices(tmp_path, monkeypatch):
    cells = run_notebook("failures.ipynb", tmp_path, monkeypatch)
    out = text_of(cell_with(cells, "LogisticRegression(max_iter"))  # also progress widgets' text
    accuracy = next(line for line in out.splitlines() if line.startswith("accuracy "))
    assert accuracy.endswith("on 2000 images")
    value = float(accuracy.split()[1].rstrip("%"))
    assert 60 < value < 99  # a real, imperfect classifier
    slices = text_of(cell_with(cells, "fs = dx.failures"))
    assert "slice 1" in slices
    assert has_output(cell_with(cells, "fs.plot()"), "application/vnd.plotly.v1+json")
    assert has_output(cell_with(cells, "fs.exemplars(0)"), "image/png")
    assert has_output(cell_with(cells, "ex.show(fs)"), "application/vnd.jupyter.widget-view+json")
    confusions = text_of(cell_with(cells, "pd_confusions"))
    assert "label" in confusions and "predicted" in confusions
    linked = [line for line in text_of(cell_with(cells, "ex.charts(")).splitlines() if line.strip()]
    assert int(linked[0].split()[0]) > 0  # charts filter the map's selection: the shirts predicted wrong
    assert linked[0].endswith("{'label': {'categories': ['Shirt']}, 'correct': {'categories': ['wrong']}}")
    assert linked[1] == "predicted" and "Shirt" not in "\n".join(linked[2:5])  # none predicted right
    assert "'largest cluster'" in text_of(cell_with(cells, "cl.rename("))


@pytest.mark.slow
def test_collection_queries_notebook_finds_bags_in_the_pool_and_brings_labels_back(tmp_path, monkeypatch):
    cells = run_notebook("collection_queries.ipynb", tmp_path, monkeypatch)
    assert has_output(cells[0], "application/vnd.jupyter.widget-view+json")
    assert text_of(cell_with(cells, 'to_query("bags")')).startswith("<Query 'bags'")
    assert "'method': 'probe'" in text_of(cell_with(cells, "q.save("))
    assert (tmp_path / "queries" / "bags.dxq" / "query.json").is_file()
    truth = text_of(cell_with(cells, "true precision of the top 200"))
    true_p, estimated = (float(part.split(": ")[1].rstrip("%")) for part in truth.strip().split(", "))
    assert true_p >= 90 and abs(true_p - estimated) < 10
    sandals = text_of(cell_with(cells, 'Query.from_text("sandal")'))
    counts = [line for line in sandals.splitlines() if line.strip()]
    assert counts[1] == "label" and counts[2].startswith("Sandal")  # most common label of the text query's top 100
    assert "-> bags.csv" in text_of(cell_with(cells, '"query", "run"'))
    assert (tmp_path / "bags.csv").is_file()
    assert '<Choice value="Bag"/>' in text_of(cell_with(cells, '"batches/bags-label-studio"'))
    assert (tmp_path / "batches" / "bags-coco" / "annotations.json").is_file()
    back = text_of(cell_with(cells, "dx.import_labels(csv)"))
    assert "team-a" in back and "csv" in back


@pytest.mark.slow
def test_fiftyone_notebook_round_trips_tags_map_and_labels(tmp_path, monkeypatch):
    import dataexplore as dx

    monkeypatch.delenv("FIFTYONE_DATABASE_URI", raising=False)  # a database of its own
    monkeypatch.setenv("FIFTYONE_DATABASE_DIR", str(tmp_path / "fiftyone-db"))
    monkeypatch.setenv("FIFTYONE_DO_NOT_TRACK", "true")
    monkeypatch.setenv("FIFTYONE_DATABASE_VALIDATION", "false")
    monkeypatch.setenv("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    cells = run_notebook("fiftyone.ipynb", tmp_path, monkeypatch)
    assert "Num samples: 2000" in text_of(cell_with(cells, "print(dataset)"))
    assert has_output(cell_with(cells, "ex = dx.explore(dataset)"), "application/vnd.jupyter.widget-view+json")
    stats = text_of(cell_with(cells, "dx.fiftyone.embed(dataset).stats"))
    assert "'computed': 0" in stats and "'reused': 2000" in stats  # the field was reused
    bags = int((dx.datasets.fashion_mnist("test", 2000).table["label"] == "Bag").sum())
    assert text_of(cell_with(cells, "dx.fiftyone.tag(")).strip() == f"{{'bags': {bags}}} ['bags to review']"
    assert text_of(cell_with(cells, "dx.fiftyone.save_map(")).strip() == "['dataexplore'] (2000, 2)"
    assert text_of(cell_with(cells, "dx.fiftyone.apply_labels(")).strip() == "3"
    label = text_of(cell_with(cells, "dataset[first[2]].human_label"))
    assert all(s in label for s in ("'label': 'Shirt'", "'annotator': 'ana'", "'source': 'csv'", "'task': 103"))
    request = text_of(cell_with(cells, "dx.fiftyone.cvat_request("))
    assert request.startswith("request.view.annotate(anno_key='review_bags', backend='cvat', "
                              "label_field='ground_truth', label_type='classification', classes=['Ankle boot'")


@pytest.mark.slow
def test_closing_the_loop_notebook_tells_a_data_gap_from_confusion_and_improves_the_model(tmp_path, monkeypatch):
    cells = run_notebook("closing_the_loop.ipynb", tmp_path, monkeypatch)
    worst = next(line for line in text_of(cell_with(cells, "sandals = rest[")).splitlines() if line.startswith("worst"))
    assert "Sandal" in worst and "under-covered in training" in worst
    results = {}
    for key in ("gap_result = compare", "confusion_result = compare"):
        rows = [line.split() for line in text_of(cell_with(cells, key)).splitlines()[2:]]
        results[key] = {r[0]: (float(r[1]), float(r[2])) for r in rows if len(r) == 3}
    gap, confusion = results["gap_result = compare"], results["confusion_result = compare"]
    assert gap["dataexplore"][0] - gap["none"][0] > 2 * (gap["random"][0] - gap["none"][0])  # slice gain
    assert gap["dataexplore"][1] >= gap["none"][1]  # overall accuracy never drops
    worst = next(line for line in text_of(cell_with(cells, "labelled = rest[:3000]")).splitlines()
                 if line.startswith("worst"))
    assert "| covered in training" in worst and "Sandal" not in worst
    assert "without probabilities:" in text_of(cell_with(cells, "confusion_result = compare"))
    assert confusion["dataexplore"][1] >= confusion["none"][1]


def _count(line: str, after: str) -> tuple[int, int]:
    """``"... found: 29 of 30 ..."`` -> (29, 30), reading the first "X of Y" after ``after``."""
    head, of, total = line.split(after, 1)[1].strip().split()[:3]
    assert of == "of", line
    return int(head), int(total.rstrip(";,"))


@pytest.mark.slow
def test_data_quality_notebook_finds_the_planted_damage_and_fixes_it(tmp_path, monkeypatch):
    import json

    cells = run_notebook("data_quality.ipynb", tmp_path, monkeypatch)
    found, planted = _count(text_of(cell_with(cells, "planted copies found")), "planted copies found:")
    assert planted == 30 and found >= 27
    assert has_output(cell_with(cells, "dups.plot()"), "application/vnd.plotly.v1+json")
    leaks, planted = _count(text_of(cell_with(cells, "leaks = dx.duplicates(train, test")), "found in train:")
    assert planted == 20 and leaks >= 18
    errors = text_of(cell_with(cells, "truly_wrong = "))
    precision = float(errors.split("precision of the candidates: ")[1].split("%")[0])
    hits, planted = _count(errors, "planted errors found:")
    assert planted == 100 and hits >= 60 and precision >= 50
    assert has_output(cell_with(cells, "ex.show(errs)"), "application/vnd.jupyter.widget-view+json")
    # the review batch exported from the map carries the suggested labels as pre-annotations
    tasks = json.loads((tmp_path / "exports" / "label-review-label-studio" / "tasks.json").read_text())
    assert tasks and all(t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks)
    fixed = text_of(cell_with(cells, "wrong labels: {wrong_before}"))
    before, after = (int(v) for v in fixed.split("wrong labels: ")[1].split(" -> "))
    assert before == 100 and after <= 40
    suggestion_right = float(fixed.split("the suggestion right for ")[1].split("%")[0])
    assert suggestion_right >= 70
    odd = next(line for line in text_of(cell_with(cells, "odd = dx.outliers")).splitlines() if "images flagged" in line)
    flagged = int(odd.split(" of ")[0])
    strays, total = _count(odd, "strays among them:")
    assert total == 8 and strays >= 5 and flagged <= 40
    deviation = float(text_of(cell_with(cells, "dx.sample(clean")).split("even split: ")[1].split()[0])
    assert deviation <= 0.05
    assert has_output(cell_with(cells, "picks.plot()"), "application/vnd.plotly.v1+json")


@pytest.mark.slow
def test_objects_notebook_finds_the_detectors_weak_spot_and_brings_corrected_boxes_back(tmp_path, monkeypatch):
    import json

    cells = run_notebook("objects.ipynb", tmp_path, monkeypatch)
    recall = text_of(cell_with(cells, "located = dx.match("))
    faint, others = (float(recall.split(f"on {w} ")[1].split("%")[0]) for w in ("faint items", "the others"))
    assert faint <= 60 and others >= 95  # the planted weakness, measured by the matching
    assert has_output(cell_with(cells, "ex = dx.explore(test"), "application/vnd.jupyter.widget-view+json")
    top = text_of(cell_with(cells, "slices = dx.failures(emb"))
    share = float(top.split("objects, ")[1].split("%")[0])
    held = float(top.split("it holds ")[1].split("%")[0])
    assert share >= 80 and held >= 80  # the top slice is the faint objects
    tasks = json.loads((tmp_path / "exports" / "faint-boxes" / "tasks.json").read_text())
    assert tasks and all(r["type"] == "rectanglelabels" for t in tasks for p in t.get("predictions", [])
                         for r in p["result"])
    fixes = text_of(cell_with(cells, "fixes = dx.import_boxes("))
    assert "'added': 0" not in fixes and "'not annotated': 0" in fixes
    back = text_of(cell_with(cells, "corrected = fixes.apply(both)"))
    assert "100% of the true boxes recovered" in back


@pytest.mark.slow
def test_synthetic_notebook_fills_the_gap_with_checked_generated_images_and_catches_a_bad_batch(tmp_path,
                                                                                                 monkeypatch):
    import json

    cells = run_notebook("synthetic.ipynb", tmp_path, monkeypatch)
    before = text_of(cell_with(cells, "model = fit(x_train[labelled]"))
    assert float(before.split("on sandals ")[1].split("%")[0]) <= 10  # the model fails on the class it hardly saw
    assert text_of(cell_with(cells, "cov = dx.coverage(")).startswith("gap at rank 0:")  # the analysis finds it
    asked = text_of(cell_with(cells, "req = cov.to_generation(")).splitlines()
    assert "'a photo of a sandal'" in asked[0] and "sneaker" in asked[0].split("negative:")[1]
    assert "request.json" in asked[1]
    line = json.loads((tmp_path / "requests" / "sandals.jsonl").read_text().splitlines()[0])
    assert line["prompt"] == "a photo of a sandal" and line["n"] == 300 and len(line["exemplars"]) == 8
    checked = text_of(cell_with(cells, "check = dx.check_generated(req, images")).splitlines()
    assert checked[0].startswith("verdict: usable")
    kept = int(checked[1].split("kept ")[1].split()[0])
    cover_before, cover_after = (float(checked[1].split(f"{w} ")[1].split(",")[0]) for w in ("before", "after"))
    # measured: 224 of 300 kept, gap covered 0.08 -> 0.57
    assert kept >= 180 and cover_after >= cover_before + 0.3
    assert has_output(cell_with(cells, "px.imshow("), "application/vnd.plotly.v1+json")
    table = text_of(cell_with(cells, "query = cov.selection(gap).to_query("))
    rows = {}
    for row in (line.rsplit(maxsplit=3) for line in table.splitlines()):
        if len(row) == 4 and row[-1].isdigit():
            rows[row[0].strip()] = (float(row[1]), float(row[2]), int(row[3]))
    none, synthetic, real = rows["none"], rows["synthetic (checked)"], rows["real (query)"]
    # measured (slice, overall): none 0.010, 0.742; synthetic 0.610, 0.796; real 0.703, 0.804
    assert synthetic[0] >= none[0] + 0.3 and synthetic[1] >= none[1] - 0.005
    assert real[0] >= none[0] + 0.3 and synthetic[2] == real[2] == kept
    bad = text_of(cell_with(cells, "bad_check = dx.check_generated(")).splitlines()
    assert "revise the prompts" in bad[0] and "duplicates: vary seeds" in bad[0]
    off, dup, kept_bad = (int(bad[1].split(f"{w} ")[1].split()[0]) for w in ("off-target", "duplicates", "kept"))
    # planted: 120 wrong-prompt images, 80 extra copies of 40; measured 142 off-target, 132 duplicates, 34 kept
    assert off >= 100 and dup >= 70 and kept_bad <= 60
    assert float(bad[2].split(": ")[1].rstrip("%")) >= 85  # measured 96 % of the wrong-prompt images flagged

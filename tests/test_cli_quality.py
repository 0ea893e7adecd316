"""The data-quality commands as a user runs them: duplicates, label-errors, sample (subprocesses, CSV out)."""

import io
import os
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image, ImageOps


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dataexplore", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=600)


@pytest.fixture
def damaged_folder(tmp_path):
    """300 real Fashion-MNIST images as PNG files, plus a low-quality JPEG and a mirrored copy of two of them."""
    import dataexplore as dx

    src = dx.load("fashion-mnist:test:300")
    root = tmp_path / "images"
    root.mkdir()
    for i in range(len(src)):
        Image.fromarray(src.images[i]).save(root / f"img-{i:03d}.png")
    buf = io.BytesIO()
    Image.fromarray(src.images[7]).save(buf, "JPEG", quality=40)
    (root / "copy-jpeg-007.jpg").write_bytes(buf.getvalue())
    ImageOps.mirror(Image.fromarray(src.images[42])).save(root / "copy-mirror-042.png")
    return root


@pytest.mark.slow
def test_duplicates_groups_the_planted_copies_and_writes_what_to_keep(damaged_folder, tmp_path):
    out, keep = tmp_path / "groups.csv", tmp_path / "keep.csv"
    res = run("duplicates", str(damaged_folder), "--out", str(out), "--keep", str(keep), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "duplicate groups" in res.stderr and "calibrated" in res.stderr
    members = pd.read_csv(out)
    assert {"id", "group", "role"} <= set(members.columns)
    groups = members.groupby("group")["id"].apply(set)
    assert any({"img-007.png", "copy-jpeg-007.jpg"} <= g for g in groups)
    assert any({"img-042.png", "copy-mirror-042.png"} <= g for g in groups)
    kept = set(pd.read_csv(keep)["id"])
    assert len({"img-007.png", "copy-jpeg-007.jpg"} & kept) == 1  # one of each group stays
    assert len({"img-042.png", "copy-mirror-042.png"} & kept) == 1
    assert len(kept) <= 300


@pytest.mark.slow
def test_label_errors_lists_the_flipped_labels_with_a_suggestion(tmp_path):
    import dataexplore as dx

    src = dx.load("fashion-mnist:test:1500")
    labels = src.table[["id", "label"]].copy()
    flipped = labels.index[labels["label"] == "Trouser"][:15]
    labels.loc[flipped, "label"] = "Bag"  # trousers filed as bags
    meta = tmp_path / "labels.csv"
    labels.to_csv(meta, index=False)
    out = tmp_path / "candidates.csv"
    res = run("label-errors", "fashion-mnist:test:1500", "--metadata", str(meta), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "label-error candidates of 1500 samples" in res.stderr
    cand = pd.read_csv(out)
    assert {"id", "label", "suggested", "score", "neighbours"} <= set(cand.columns)
    planted = set(labels.loc[flipped, "id"])
    top = cand.head(15)
    caught = top[top["id"].isin(planted)]
    assert len(caught) >= 12 and (caught["suggested"] == "Trouser").all()


@pytest.mark.slow
def test_sample_balances_the_picks_and_writes_a_report(tmp_path):
    out, report = tmp_path / "picks.csv", tmp_path / "report.csv"
    res = run("sample", "fashion-mnist:test:1000", "-n", "30", "--balance-by", "label", "--out", str(out),
              "--report", str(report), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "picked 30 of 1000 by diverse" in res.stderr
    picks = pd.read_csv(out)
    assert len(picks) == 30 and picks["id"].is_unique
    assert (picks["label"].value_counts() == 3).all() and picks["label"].nunique() == 10
    assert {"axis", "value", "target", "picked"} <= set(pd.read_csv(report).columns)


@pytest.mark.parametrize("args, message", [
    (["sample", "fashion-mnist:test:200", "-n", "5", "--balance-by", "camera", "--out", "p.csv"], "camera"),
    (["sample", "fashion-mnist:test:200", "-n", "5", "--strategy", "uncertain", "--out", "p.csv"], "probabilities"),
    (["label-errors", "fashion-mnist:test:200", "--label", "nope", "--out", "c.csv"], "nope"),
    (["duplicates", "fashion-mnist:test:200", "--out", "d.txt"], ".csv"),
    (["label-errors", "fashion-mnist:test:200", "--metadata", "missing.csv", "--out", "c.csv"], "missing.csv"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
    res = run(*args, "--quiet", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dataexplore: error:") and message in lines[0], res.stderr

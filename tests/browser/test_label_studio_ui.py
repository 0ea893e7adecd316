"""Label Studio's own labeling UI, in headless chromium, shows the images of a pushed batch: the task points at
``/data/local-files/...`` and the server really serves the file through the storage push connected."""

from __future__ import annotations

import contextlib
import os

import pytest

import dataexplore as dx

from .harness import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_pushed_task_shows_its_image_in_label_studio(label_studio, browser):
    # the session's chromium (tests/browser/conftest.py): playwright's sync API runs once per process
    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need chromium (apt-get install chromium); .ci/setup installs it")
    pytest.importorskip("playwright")
    samples = dx.load("fashion-mnist:test:3")
    folder = dx.export_labeling(samples, label_studio.document_root / "ui" / "batch", predictions="label")
    project = dx.labeling.push(folder, url=label_studio.url, token=label_studio.admin.token, title="ui check",
                               document_root=label_studio.document_root)
    with label_studio.api(label_studio.admin) as api:
        task = api.get("/api/tasks", params={"project": project.id}).json()["tasks"][0]

    with contextlib.closing(browser.new_context(viewport={"width": 1400, "height": 1000})) as context:
        page = context.new_page()
        served = []  # what the server answered for the task's image, through its local-files storage
        page.on("response", lambda r: served.append((r.status, r.headers.get("content-type")))
                if r.url.endswith(task["data"]["image"]) else None)
        page.goto(f"{label_studio.url}/user/login/")
        page.fill("input[name=email]", label_studio.admin.email)
        page.fill("input[name=password]", label_studio.admin.password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url, timeout=60_000)
        page.goto(f"{label_studio.url}/projects/{project.id}/data?task={task['id']}")
        # the labeling editor (not the data table's thumbnails) draws the task's image
        size = page.wait_for_function(
            """() => {
              const img = [...document.querySelectorAll('.lsf-main-view__annotation .lsf-image img, '
                                                        + '.lsf-main-view__annotation img')]
                .find(i => i.complete && i.naturalWidth > 0);
              return img && [img.naturalWidth, img.naturalHeight];
            }""", timeout=120_000).json_value()
        assert size == [28, 28]  # a Fashion-MNIST image, as written into the batch
        assert (200, "image/png") in served

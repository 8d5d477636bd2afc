"""The browser UI in headless Chromium (Debian's `chromium` through Playwright): drop an
image, see its heat map, move the threshold slider, mark a verdict, find it in the history.
Screenshots go to $ODDITY_UI_SCREENSHOTS (docs/images for the docs) or a temporary folder."""
from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from oddity.bench.service import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_url(make_client):
    client, _ = make_client()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def wait_until(page, function: str, timeout_s: float = 20.0) -> None:
    """Poll a JavaScript function until it returns true (`page.wait_for_function` evaluates
    strings with eval, which the UI's Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function):
        assert time.monotonic() < deadline, f"timed out waiting for {function}"
        time.sleep(0.1)


def test_upload_heat_map_threshold_slider_verdict_and_history(page, live_url, test_images, tmp_path):
    from playwright.sync_api import expect

    shots = Path(os.environ.get("ODDITY_UI_SCREENSHOTS", tmp_path))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_url}/ui/")
    page.wait_for_selector("#model option[value=parts]", state="attached")

    # drag and drop two images onto the drop zone
    transfer = page.evaluate_handle("""(files) => {
        const transfer = new DataTransfer();
        for (const [name, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
        }
        return transfer; }""", [["defect.png", base64.b64encode(test_images["defect"]).decode()],
                                ["good.png", base64.b64encode(test_images["good"]).decode()]])
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("[data-testid=result] >> nth=1")
    wait_until(page, "() => [...document.querySelectorAll('[data-testid=heat-map]')]"
                     ".every((img) => img.complete && img.naturalWidth === 64)")
    labels = page.locator("[data-testid=label]")
    assert labels.all_text_contents() == ["anomalous", "normal"]
    page.locator("#opacity").fill("0.6")
    assert page.eval_on_selector("[data-testid=heat-map]", "(img) => img.style.opacity") == "0.6"
    page.screenshot(path=str(shots / "service-inspect.png"), full_page=True)

    # the threshold slider relabels the shown results live
    page.locator("#threshold").press("End")
    assert labels.all_text_contents() == ["normal", "normal"]
    page.locator("#threshold").press("Home")
    assert labels.all_text_contents() == ["anomalous", "anomalous"]
    page.click("#threshold-reset")
    assert labels.all_text_contents() == ["anomalous", "normal"]

    # review with the keyboard, then find the verdict through the history filters
    page.click("button[data-tab=history]")
    page.wait_for_selector("[data-testid=history-row] >> nth=1")
    page.wait_for_selector("[data-testid=detail-verdict]:has-text('not reviewed')")
    page.keyboard.press("j")  # newest first: the second row is the defect image
    page.wait_for_selector("h3:has-text('defect.png')")
    first_id = page.locator("[data-testid=history-row]").nth(1).get_attribute("data-id")
    page.keyboard.press("f")
    verdict_cell = f"[data-testid=history-row][data-id='{first_id}'] [data-testid=verdict]"
    page.wait_for_selector(f"{verdict_cell}:has-text('false_alarm')")
    page.select_option("#filters select[name=verdict]", "false_alarm")
    page.click("#filters button[type=submit]")
    row = page.locator("[data-testid=history-row]")
    expect(row).to_have_count(1)
    assert row.get_attribute("data-id") == first_id
    assert row.locator("[data-testid=verdict]").text_content() == "false_alarm"
    page.select_option("#filters select[name=verdict]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("[data-testid=history-row] >> nth=1")
    page.screenshot(path=str(shots / "service-history.png"), full_page=True)

    # the model page shows the counts, and a proposal from the reviews
    page.click("button[data-tab=model]")
    page.wait_for_selector("[data-testid=model-facts]:has-text('verdict_false_alarm')")
    page.click("#recalibrate button[type=submit]")
    page.wait_for_selector("#proposal:has-text('n_false_alarms')")
    page.screenshot(path=str(shots / "service-model.png"), full_page=True)
    assert errors == []


@pytest.fixture
def live_models_url(model_file, series_model, tmp_path):
    """A live service over a folder with an image model (and its evaluation report beside it)
    and a series model."""
    import shutil

    from oddity.serve.adapter import load_models
    from oddity.serve.app import create_app
    from oddity.serve.files import FileStore
    from oddity.serve.service import InspectionService
    from oddity.serve.settings import ServiceSettings
    from oddity.serve.store import InspectionStore

    models = tmp_path / "models"
    (models / "parts.report" / "images").mkdir(parents=True)
    shutil.copy(model_file, models / "parts.oddity")
    shutil.copy(series_model, models / "oven.oddity")
    (models / "parts.report" / "index.html").write_text("<html><body><h1>parts: evaluation</h1></body></html>")
    service = InspectionService(load_models([str(models)]),
                                InspectionStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}"),
                                FileStore(tmp_path / "files"), ServiceSettings())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    service.close()


def test_series_ranges_and_the_model_report(page, live_models_url, series_csv, tmp_path):
    shots = Path(os.environ.get("ODDITY_UI_SCREENSHOTS", tmp_path))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_models_url}/ui/")
    page.wait_for_selector("#model option[value=oven]", state="attached")
    page.select_option("#model", "oven")
    page.set_input_files("#files", files=[{"name": "oven.csv", "mimeType": "text/csv", "buffer": series_csv()}])
    page.wait_for_selector("[data-testid=series-result]:has-text('300 steps')")
    assert page.locator("[data-testid=ranges] tr").count() >= 2  # a header and at least one range
    assert "2026-01-01T02:30:00" in page.locator("[data-testid=ranges]").text_content()
    page.screenshot(path=str(shots / "service-series.png"), full_page=True)

    page.select_option("#model", "parts")
    page.click("button[data-tab=model]")
    link = page.wait_for_selector("[data-testid=report]")
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert report.locator("h1").text_content() == "parts: evaluation"
    assert errors == []

"""The explorer notebook in a real browser: JupyterLab headless on 127.0.0.1, Debian's Chromium
driven by playwright. Runs every cell, reads the metrics the explorer widget displays, changes
the layer dropdown as a user would, and checks that the metrics text and the plot changed (and
that the new text is what ``lwnn.widgets.Explorer`` computes for that layer); the same for the
calibration explorer's tensor dropdown. Screenshots go to test-artifacts/browser/.

Skips when Chromium or playwright is missing, unless LWNN_REQUIRE_BROWSER=1 (scripts/test.sh
sets it, so CI fails instead of skipping).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "explorer.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
EXPLORER = ".lwnn-explorer"  # CSS classes the widgets carry (lwnn.widgets add_class)
CALIBRATION = ".lwnn-calibration-explorer"
OLD_LAYER, NEW_LAYER = "/pw3/relu/Relu", "/conv2/relu/Relu"
OLD_TENSOR, NEW_TENSOR = "/conv2/bn/BatchNormalization_output_0", "/pw3/relu/Relu_output_0"


def _require_browser():
    why = None
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} not found (Debian package chromium; scripts/setup.sh installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "the playwright package is not installed (requirements.txt; scripts/setup.sh)"
    if why and os.environ.get("LWNN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (LWNN_REQUIRE_BROWSER=1) but {why}")
    if why:
        pytest.skip(why)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never via a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a copy of the explorer notebook; yields its base URL and token."""
    _require_browser()
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    # No "get notified about Jupyter news?" prompt over the screenshots (and no fetching: offline).
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", "--allow-root",
         # offline: no extension index, update check or news feed
         "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url="],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with _DIRECT.open(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp_path / "jupyterlab.log").read_text()[-2000:]
                    pytest.fail(f"JupyterLab did not start: {log_text}")
                time.sleep(0.3)
        yield base, token
    finally:
        # The server's process group: the server and the kernel it started (start_new_session).
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


_NUMBER = re.compile(r"(?<![\w/])-?\d+\.?\d*(?:e[-+]?\d+)?(?![\w/])")  # not the digits inside names


def _numbers(text: str) -> list[float]:
    return [float(v) for v in _NUMBER.findall(text)]


def _choose(page, widget: str, dropdown: str, label: str, text: str, name: str
            ) -> tuple[str, str, bytes, bytes]:
    """In the widget matching CSS ``widget``, pick ``label`` in its ``dropdown``; wait until its
    ``text`` element and its plot (``img.lwnn-plot``) change. Returns the text and the plot
    screenshot before and after; screenshots of the widget go to ARTIFACTS/``name``-*.png."""
    root = page.locator(widget)
    root.scroll_into_view_if_needed()
    text_sel, plot_sel = f"{widget} {text}", f"{widget} img.lwnn-plot"
    page.wait_for_function("sel => document.querySelector(sel)?.naturalWidth > 0", arg=plot_sel,
                           timeout=30_000)
    before_text = page.locator(text_sel).inner_text()
    before_src = page.locator(plot_sel).get_attribute("src")
    before_plot = page.locator(plot_sel).screenshot(path=str(ARTIFACTS / f"{name}-plot-before.png"))
    root.screenshot(path=str(ARTIFACTS / f"{name}-before.png"))
    root.locator(f"{dropdown} select").select_option(label=label)
    # Widget views re-render their DOM: look the elements up again on every poll.
    page.wait_for_function("([sel, old]) => { const el = document.querySelector(sel);"
                           " return el && el.innerText !== old; }",
                           arg=[text_sel, before_text], timeout=60_000)
    page.wait_for_function("([sel, old]) => { const el = document.querySelector(sel);"
                           " return el && el.src !== old && el.complete && el.naturalWidth > 0; }",
                           arg=[plot_sel, before_src], timeout=60_000)
    after_text = page.locator(text_sel).inner_text()
    after_plot = page.locator(plot_sel).screenshot(path=str(ARTIFACTS / f"{name}-plot-after.png"))
    root.screenshot(path=str(ARTIFACTS / f"{name}-after.png"))
    return before_text, after_text, before_plot, after_plot


def _run_all_cells(page) -> None:
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    # Run once the kernel is connected ("Idle" in the status bar); JupyterLab may still ask which
    # kernel to use (a race between session start and the first run): answer it.
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    last = page.locator(f"{CALIBRATION} .lwnn-readout pre")  # the notebook's last widget
    deadline = time.monotonic() + 90
    while not last.is_visible():
        assert time.monotonic() < deadline, "the widgets did not render in 90 s"
        if select.is_visible():
            select.click()
        page.wait_for_timeout(250)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)  # every cell ran


def test_explorers_update_in_a_real_browser(jupyterlab, bundled_model, bundled_samples):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # only this run's pictures
        old.unlink()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--no-proxy-server"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            _run_all_cells(page)
            layer = _choose(page, EXPLORER, ".lwnn-layer", NEW_LAYER, ".lwnn-metrics pre", "explorer")
            tensor = _choose(page, CALIBRATION, ".lwnn-tensor", NEW_TENSOR, ".lwnn-readout pre",
                             "calibration")
            page.screenshot(path=str(ARTIFACTS / "page-after.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()

    from lwnn.widgets import Explorer, calibration_explorer
    from lwnn.widgets.layer_explorer import Workload

    model, images = bundled_model, bundled_samples[0]
    calib, feeds = {"image": images[:128]}, {"image": images[128:192]}  # as in the notebook

    before, after, before_plot, after_plot = layer
    # where the notebook's last explorer cell left it, then the layer chosen in the browser
    assert f"{OLD_LAYER} (Relu, channel 3 of 64)" in before.splitlines()[0]
    assert after != before
    assert after_plot != before_plot, "the explorer's plot did not change after choosing another layer"
    # The displayed table is the one the library computes for that layer on the same data.
    want = Explorer({model.name: Workload(model, feeds, calib)}).state(
        model.name, "s8", "minmax", NEW_LAYER, channel=3).text()  # the channel stays
    _same_table(after, want)

    before, after, before_plot, after_plot = tensor
    assert before.startswith(f"{OLD_TENSOR}: threshold") and after.startswith(f"{NEW_TENSOR}: threshold")
    assert after_plot != before_plot, "the calibration plot did not change after choosing another tensor"
    _same_table(after, calibration_explorer(model, calib, NEW_TENSOR).state.text())


def _same_table(shown: str, want: str) -> None:
    """Same words; numbers equal to their printed 4 digits (the kernel may sum in another order
    than this process)."""
    def words(text):
        return [_NUMBER.sub("#", line).split() for line in text.splitlines()]

    assert words(shown) == words(want)
    assert _numbers(shown) == pytest.approx(_numbers(want), rel=2e-3)

"""The console in a real browser: mosquitto, two daemons with snapshots on, ``review serve``, headless chromium.

Everything runs on loopback. The daemons run the demo model (ONNX Runtime) on a synthetic video of storage boxes,
so their detections and snapshots are real. Checked in the page, without reloading it (the live updates): both
devices in the fleet table, a device killed with SIGKILL turning offline (only the broker's last will can say so),
a snapshot drawn with the boxes of its detection message (a pixel on a box edge is the box colour), and a bad
snapshot published by a misbehaving client counted as rejected while the console runs on. The screenshot goes to
the test's temp folder, and to docs/console.png (shown by the README) with UPDATE_DOCS_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from edge_helpers import REPO, free_port, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker  # type: ignore[import-not-found]
from review_console_helpers import Console, publish_raw, require_chromium  # type: ignore[import-not-found]

DEMO = REPO / "models" / "demo"
pytestmark = pytest.mark.timeout(150)


def synthetic_video(folder: Path) -> Path:
    video = folder / "boxes.mp4"
    subprocess.run(
        [sys.executable, "-m", "cloud_training", "synth", "--out", str(folder / "synth"), "--images", "0",
         "--seed", "1", "--video", str(video), "--frames", "45", "--force"],
        check=True, capture_output=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    return video


def daemon(video: Path, port: int, thing: str, folder: Path) -> subprocess.Popen:
    return start_daemon(
        "--model", str(DEMO), "--source", str(video), "--loop", "--max-fps", "5", "--publish", "mqtt",
        "--mqtt-port", str(port), "--thing-name", thing, "--status-interval", "0.5",
        "--set", "snapshots.enabled=true", "--set", "snapshots.per_minute=20",
        "--set", f"publish.outbox.path={json.dumps(str(folder / (thing + '.outbox')))}",
        "--set", "publish.mqtt.reconnect_min_s=0.1", "--set", "publish.mqtt.reconnect_max_s=0.5",
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


STATE = 'document.querySelector(`#fleet tr[data-device="${name}"] .state`)?.dataset.state ?? null'

BOX_PIXEL = """async () => {
  const canvas = document.querySelector("canvas.snapshot[data-boxes]");
  const doc = await (await fetch("api/devices/cam-a")).json();
  const snap = doc.snapshots.find((s) => String(s.id) === canvas.dataset.id);
  const d = snap.detections[0];
  const [x0, y0, x1, y1] = d.box_normalized;
  const x = Math.round(x0 * canvas.width), y = Math.round((y0 + y1) / 2 * canvas.height);
  const drawn = Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
  const image = new Image(); image.src = snap.url; await image.decode();
  const plain = document.createElement("canvas"); plain.width = image.naturalWidth; plain.height = image.naturalHeight;
  plain.getContext("2d").drawImage(image, 0, 0);
  const under = Array.from(plain.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
  return {boxes: Number(canvas.dataset.boxes), detections: snap.detections.length, drawn, under,
          colour: COLOURS[d.class_id % COLOURS.length], palette: COLOURS};
}"""


def send_degraded(port: int, done: threading.Event) -> None:
    status = {"schema": "edge-runtime/status/1", "device": "cam-c", "session": "c1", "state": "degraded",
              "at": "2026-12-02T01:00:00.000Z", "fps_out": 0.0, "outbox": {"depth": 57, "bytes": 41000, "dropped": 0},
              "problems": [{"part": "mqtt", "reason": "TLS handshake failed: certificate verify failed",
                            "since": "2026-12-02T00:59:30.000Z"}]}  # fmt: skip
    for _ in range(200):  # at most 200 x 0.3 s
        publish_raw(port, [("edge/cam-c/status", json.dumps(status).encode())], client_id="cam-c")
        if done.wait(0.3):
            return


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]


def test_console_in_chromium(broker: Broker, tmp_path: Path) -> None:
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    video = synthetic_video(tmp_path)
    console = Console("--topic", "edge/#", "--mqtt-port", str(broker.port), "--port", str(free_port()),
                      "--status-interval", "0.5", "--duration", "120")  # fmt: skip
    daemons: dict[str, subprocess.Popen] = {}
    try:
        url = console.url()
        assert url.startswith("http://127.0.0.1:")
        for thing in ("cam-a", "cam-b"):
            daemons[thing] = daemon(video, broker.port, thing, tmp_path)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            blocked: list[str] = []  # what the Content-Security-Policy refused: the page's own script must run
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(url)
            for name in ("cam-a", "cam-b"):
                page.wait_for_function(f"(name) => {STATE} === 'online'", arg=name, timeout=40_000)
            assert page.evaluate("document.getElementById('live').dataset.live") == "open"
            assert page.evaluate("document.getElementById('broker').dataset.state") == "connected"

            page.click('#fleet tr[data-device="cam-a"]')
            page.wait_for_selector("canvas.snapshot[data-boxes]", timeout=40_000)
            pixel = page.evaluate(BOX_PIXEL)
            assert pixel["boxes"] == pixel["detections"] >= 1
            # the box outline, drawn from the detection (another box drawn later may cross it: any box colour)
            assert pixel["drawn"] in [rgb(colour) for colour in pixel["palette"]], pixel
            assert pixel["under"] != pixel["drawn"]  # and not in the JPEG itself: boxes are not burned in
            page.wait_for_function("() => document.querySelectorAll('#chart rect').length > 0")
            page.click("canvas.snapshot[data-boxes]")  # full size: the JPEG's own pixels, boxes drawn again
            page.wait_for_function("() => document.querySelector('#full.open canvas[data-boxes]') !== null")
            size = "(selector) => { const c = document.querySelector(selector); return [c.width, c.height," \
                   " Math.round(c.getBoundingClientRect().width)] }"
            full, thumb = page.evaluate(size, "#full canvas"), page.evaluate(size, "canvas.snapshot[data-boxes]")
            assert full[:2] == thumb[:2] and full[2] > thumb[2], (full, thumb)  # same pixels, shown bigger
            page.click("#full")
            page.wait_for_function("() => document.querySelector('#full.open') === null")

            daemons["cam-b"].send_signal(signal.SIGKILL)
            daemons["cam-b"].wait(timeout=10)
            page.wait_for_function(f"(name) => {STATE} === 'offline'", arg="cam-b", timeout=20_000)
            assert page.evaluate(f"(name) => {STATE}", "cam-a") == "online"

            bad = {"schema": "edge-runtime/snapshot/1", "device": "cam-a", "session": "forged", "seq": 1,
                   "captured_at": "2026-12-02T00:00:00.000Z", "frame": {"width": 8, "height": 8},
                   "image": {"format": "jpeg", "width": 8, "height": 8, "quality": 80, "bytes": 4},
                   "data": "AAAAAA=="}  # fmt: skip
            forged = {"schema": "edge-runtime/status/1", "device": "cam-a", "session": "forged", "state": "degraded",
                      "at": "2026-12-02T00:00:00.000Z"}  # fmt: skip
            publish_raw(broker.port, [("edge/cam-a/snapshot", json.dumps(bad).encode()),
                                      ("edge/cam-a/snapshot", b"{" * 300_000),
                                      ("edge/cam-a/detections", b"[" * 2048),  # once a RecursionError
                                      ("edge/intruder/status", json.dumps(forged).encode())])  # fmt: skip
            counted = "['bad_image 1', 'oversize 1', 'malformed 1', 'wrong_device 1'].every((s) =>" \
                      " document.querySelector('#rejected').textContent.includes(s))"
            assert wait_for(lambda: page.evaluate(counted), timeout=20), page.text_content("#rejected")
            assert page.evaluate(f"(name) => {STATE}", "cam-a") == "online"  # the intruder could not degrade it

            # a device that says it is degraded, and why (a literal status, repeated as a device's interval would)
            degraded = threading.Event()
            sender = threading.Thread(target=send_degraded, args=(broker.port, degraded), daemon=True)
            sender.start()
            page.wait_for_function(f"(name) => {STATE} === 'degraded'", arg="cam-c", timeout=20_000)
            reason = page.text_content('#fleet tr[data-device="cam-c"] .problems')
            assert reason == "mqtt: TLS handshake failed: certificate verify failed (since 00:59:30)", reason

            page.fill("#filter input[name=device]", "cam-a")
            page.fill("#filter input[name=min_score]", "0.5")
            page.click("#filter button")
            page.wait_for_function("() => document.querySelectorAll('#found tbody tr').length > 0")
            cells = "rows => rows.map(r => [r.cells[1].textContent, Number(r.cells[3].textContent)])"
            found = page.eval_on_selector_all("#found tbody tr", cells)
            assert all(device == "cam-a" and score >= 0.5 for device, score in found), found
            shot = tmp_path / "console.png"
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(shot))  # the viewport: the fleet, then the device
            degraded.set()
            sender.join(10)
            browser.close()
        assert blocked == [], blocked
        assert shot.stat().st_size > 10_000
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
            shutil.copyfile(shot, REPO / "docs" / "console.png")
        assert console.process.poll() is None, console.stderr()  # survived every bad message
        assert console.stop() == 0, console.stderr()
    finally:
        for process in [*daemons.values(), console.process]:
            if process.poll() is None:
                process.kill()
                process.wait(10)

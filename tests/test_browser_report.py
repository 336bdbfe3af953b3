"""Open the report in headless Chromium: it renders, its script runs, and the
console stays clean. Keeps a screenshot under test-artifacts/ for a human.

Console messages (console.error, uncaught exceptions) are read from
Chromium's own log (--enable-logging=stderr prints them as ":CONSOLE" lines);
the page's script marks <body data-page-ready="ok"> as its last statement, so
the dumped DOM proves the script ran to the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from asyncbench.render.report import write_report
from tests.synthetic import demo_run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
TIMEOUT_S = 120


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        reason = "headless Chromium not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


def _run_chromium(chromium: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            url,
        ]
        return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def report_page() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return write_report(demo_run(complete=False), ARTIFACTS / "report")


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_renders_in_chromium_without_console_errors(report_page: Path) -> None:
    chromium = _chromium()
    proc = _run_chromium(chromium, report_page.as_uri(), "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-page-ready="ok"' in dom, "the page's script did not run to the end"
    assert _console_lines(proc.stderr) == []
    # the browser parsed what we wrote: every section and the charts survived
    for section in ("verdicts", "throughput", "latency", "heatmap", "cost", "model", "flags", "run", "numbers"):
        assert f'id="{section}"' in dom
    assert dom.count("<svg") >= 20


def test_console_detection_works(tmp_path: Path) -> None:
    """The check above would catch a broken script (guards against a silent pass)."""
    chromium = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>missingFunction();</script></body></html>")
    proc = _run_chromium(chromium, bad.as_uri(), "--dump-dom")
    assert any("missingFunction" in line for line in _console_lines(proc.stderr))


def test_screenshot_artifact(report_page: Path) -> None:
    chromium = _chromium()
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    proc = _run_chromium(chromium, report_page.as_uri(), f"--screenshot={shot}", "--window-size=1280,4000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_lines(proc.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000

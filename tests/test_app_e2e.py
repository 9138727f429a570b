"""End to end in a real browser: `anonaudit ui` (app + worker), an upload, a job, its report.

Headless Chromium from Debian's ``chromium`` package, driven by Playwright (never
``playwright install``). The browser is required: without it the test fails, it never skips.
Screenshots of every page are saved under ``reports/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "reports" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EVIL_NAME = "../../outside.csv"  # an uploaded file's name must never become a path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`anonaudit ui` exited with {proc.returncode} before serving", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the app did not answer on {url} within {timeout:.0f} s", pytrace=False)


@contextmanager
def _serve(tmp_path: Path, passwords: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`anonaudit ui` on a free localhost port against a fresh home; stopped with Ctrl-C (SIGINT)."""
    home = tmp_path / "home"
    env = {**os.environ, "ANONAUDIT_HOME": str(home), "ANONAUDIT_REPORTS": str(tmp_path / "reports"),
           "ANONAUDIT_DATABASE_URL": f"sqlite:///{home / 'anonaudit.db'}", "OMP_NUM_THREADS": "1"}
    for role in ("STEWARD", "AUDITOR", "ENGINEER"):
        env.pop(f"ANONAUDIT_UI_PASSWORD_{role}", None)
    env.update({f"ANONAUDIT_UI_PASSWORD_{role.upper()}": value for role, value in passwords.items()})
    home.mkdir(exist_ok=True)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "anonaudit", "ui", "--port", str(port)], env=env, cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, home
    finally:
        proc.send_signal(signal.SIGINT)  # `anonaudit ui` then stops its app and worker
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: clean up, the test is about what it showed
            pass
        finally:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with _serve(tmp_path, {}) as out:
        yield out


def _browser(p: Any) -> Any:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (./dev test does)", pytrace=False)
    return p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _tiny_csv() -> bytes:
    rows = ["subject,activity,acc_x,acc_y"]
    rows += [f"{s},{'sit' if i < 20 else 'walk'},{0.01 * i:.2f},{s * 0.5 + 0.02 * i:.2f}" for s in (1, 2) for i in range(40)]
    return ("\n".join(rows) + "\n").encode()


def test_upload_import_job_and_report_in_a_browser(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, home = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2200})  # Streamlit scrolls inside: a tall window shows all
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # first page loads import the job kinds (torch)

        def shoot(shot: str) -> None:
            """Screenshot once the script run has finished (no skeletons, no Stop button)."""
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
            expect(page.get_by_role("button", name="Stop")).to_have_count(0)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)

        def visit(path: str, heading: str, shot: str) -> None:
            page.goto(f"{url}/{path}")
            expect(page.get_by_role("heading", name=heading).first).to_be_visible()
            shoot(shot)

        visit("", "anonaudit", "0_home")
        # upload a tiny table under a hostile name; map its columns; queue the import
        visit("Datasets", "Datasets", "1_datasets_empty")
        page.locator("input[type=file]").first.set_input_files(
            {"name": EVIL_NAME, "mimeType": "text/csv", "buffer": _tiny_csv()})
        name = page.get_by_label("Dataset name")
        name.fill("tiny")
        page.locator("button:visible", has_text="Queue import").click()
        expect(page.get_by_text("Queued job 1 (import)")).to_be_visible()
        shoot("2_datasets_upload")
        assert not (tmp_path / "outside.csv").exists() and not (home / "outside.csv").exists()
        stored = sorted(p.suffix for p in (home / "uploads").iterdir())
        assert stored == [".csv", ".toml"]  # generated names only

        # the worker started by `anonaudit ui` runs the job; the Jobs page polls and shows the report
        page.goto(f"{url}/Jobs")
        expect(page.get_by_text("Imported tiny")).to_be_visible()
        page.get_by_text("Preview the standalone HTML report here").click()
        report = page.frame_locator("iframe").first
        expect(report.get_by_role("heading", name="anonaudit job 1 — import")).to_be_visible()
        expect(report.get_by_text("succeeded").first).to_be_visible()
        shoot("3_jobs_report")

        visit("Datasets", "Datasets", "4_datasets_inspect")
        expect(page.get_by_text("Seconds per subject")).to_be_visible()
        # every other page in the navigation (pages other engineers add included) renders without an exception
        links = page.get_by_test_id("stSidebarNav").get_by_role("link")
        hrefs = [link.get_attribute("href") for link in links.all()]
        assert len(hrefs) >= 4
        for i, href in enumerate(hrefs):
            slug = href.rstrip("/").rsplit("/", 1)[-1]
            if slug in ("Datasets", "Jobs") or href.rstrip("/") == url:  # shot above
                continue
            page.goto(href)
            expect(page.locator("h1").first).to_be_visible()
            shoot(f"5_page_{i}_{slug}")
        browser.close()


PAGE_SLUGS = ("", "Datasets", "Evaluate", "Anonymise", "Private_models", "Bias_audit", "Explain", "Jobs",
              "Jobs?job=1", "Datasets/", "nonexistent_page")


def test_every_page_and_download_needs_sign_in_from_the_first_request(tmp_path, monkeypatch):
    """Passwords set, a fresh server, an anonymous visitor's first request: only the sign-in form.

    Then a steward signs in, downloads a job's report (the link Streamlit serves it under is
    recorded) and leaves; new anonymous visitors request that link and every page again.
    """
    from playwright.sync_api import expect, sync_playwright

    from anonaudit import api
    from anonaudit.access import hash_password

    home = tmp_path / "home"
    monkeypatch.setenv("ANONAUDIT_HOME", str(home))
    monkeypatch.setenv("ANONAUDIT_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("ANONAUDIT_DATABASE_URL", f"sqlite:///{home / 'anonaudit.db'}")
    job_id = api.run("noop", {})["id"]  # a finished job with a report to download
    with _serve(tmp_path, {"steward": hash_password("s3cret"), "auditor": hash_password("a")}) as (url, _), \
            sync_playwright() as p:
        browser = _browser(p)

        def anonymous_sees_only_sign_in(target: str) -> None:
            context = browser.new_context()  # no cookies, no session: a first request
            page = context.new_page()
            page.set_default_timeout(60_000)
            response = page.goto(target) if "/media/" not in target else context.request.get(target)
            assert response is not None
            if "/media/" in target:  # a file, not a page: it must not be served
                assert response.status >= 400, (target, response.status)
            else:
                expect(page.get_by_role("heading", name="anonaudit — sign in")).to_be_visible(timeout=60_000)
                expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
                expect(page.get_by_role("button", name="Sign in")).to_be_visible()
                body = page.locator("body").inner_text()
                for leaked in ("Newest jobs", "Cancel job", "Download", "Queue", "noop"):
                    assert leaked not in body, (target, leaked)
            context.close()

        for slug in PAGE_SLUGS:
            anonymous_sees_only_sign_in(f"{url}/{slug}")

        steward = browser.new_context()
        page = steward.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/Jobs")
        page.locator("input[type=password]").fill("s3cret")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Jobs").click()  # a reload would sign out
        expect(page.get_by_role("heading", name="Jobs").first).to_be_visible(timeout=60_000)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download report (standalone HTML)").click()
        link = download.value.url
        assert f"anonaudit job {job_id}" in Path(download.value.path()).read_text()
        steward.close()
        for target in (link, *(f"{url}/{slug}" for slug in PAGE_SLUGS)):
            anonymous_sees_only_sign_in(target)
        browser.close()

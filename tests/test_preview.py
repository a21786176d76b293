"""``cptpub preview``: the server (127.0.0.1 only, dist/ only, reload script in responses only), the watch-and-rebuild
loop (with a stand-in build, fast) and the real command in a subprocess (real builds, one code)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cptpub.edition import EditionResult
from cptpub.errors import CptpubError, UsageError
from cptpub.project import Project
from cptpub.publish import preview
from cptpub.publish.preview import (
    VERSION_PATH,
    BuildState,
    PreviewServer,
    inject_reload_script,
    run_preview,
    watch_plan,
)
from tests.conftest import copy_project

# The real CLI with the preview command attached (works whether or not cli/__init__ imports it yet).
CLI_WITH_PREVIEW = "import sys, cptpub.cli.preview; from cptpub.cli import main; sys.exit(main())"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy, even if the env names one
PAGE = b'<!DOCTYPE html>\n<html lang="en"><head><title>t</title></head><body><h1>Hello</h1></body></html>\n'


def fetch(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(condition, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the reload script -----------------------------------------------------------------------------------------


def test_reload_script_goes_before_the_last_body_end_tag() -> None:
    out = inject_reload_script(PAGE, loaded=3)
    assert out.count(b"<script data-cptpub-preview>") == 1
    assert out.index(b"<h1>Hello</h1>") < out.index(b"<script") < out.rindex(b"</body>")
    assert b"loaded = 3" in out and json.dumps(VERSION_PATH).encode() in out
    assert inject_reload_script(b"<p>no body tag</p>", 1).startswith(b"<p>no body tag</p><script")


def test_pages_with_their_own_security_policy_get_no_script() -> None:
    page = b'<html><head><meta http-equiv="Content-Security-Policy" content="x"></head><body></body></html>'
    assert inject_reload_script(page, 1) == page


# --- the server --------------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "cpt-20702.html").write_bytes(PAGE)
    (dist / "cpt-20702.pdf").write_bytes(b"%PDF-1.7 fake")
    (dist / ".hidden").write_text("secret")
    (tmp_path / "secret.txt").write_text("outside dist")
    state = BuildState(code="20702")
    state.finished(None)
    with PreviewServer(dist, state) as server:
        yield server


def raw_get(server: PreviewServer, path: str, host: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_server_listens_on_loopback_only_on_a_free_port(served: PreviewServer) -> None:
    assert served.httpd.server_address[0] == "127.0.0.1"
    assert served.port > 0 and served.url == f"http://127.0.0.1:{served.port}/cpt-20702.html"


def test_html_responses_get_the_script_and_the_file_stays_untouched(served: PreviewServer) -> None:
    status, body, headers = raw_get(served, "/cpt-20702.html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"data-cptpub-preview" in body and body.startswith(PAGE.split(b"</body>")[0])
    assert headers["Cache-Control"] == "no-store"
    assert (served.dist_dir / "cpt-20702.html").read_bytes() == PAGE, "dist/ itself is never modified"
    status, body, headers = raw_get(served, "/cpt-20702.pdf")
    assert (status, body, headers["Content-Type"]) == (200, b"%PDF-1.7 fake", "application/pdf")


def test_version_endpoint_and_root_redirect(served: PreviewServer) -> None:
    status, body, _ = raw_get(served, VERSION_PATH)
    assert status == 200
    assert json.loads(body) == {"code": "20702", "status": "ok", "version": 1, "ok_version": 1, "error": ""}
    status, _, headers = raw_get(served, "/")
    assert status == 302 and headers["Location"] == "/cpt-20702.html"


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/.hidden", "/nope.html", "/%00", "/..\\secret.txt"],
)
def test_only_files_inside_dist_are_served(served: PreviewServer, path: str) -> None:
    status, body, _ = raw_get(served, path)
    assert status == 404 and b"outside dist" not in body and b"secret" not in body


def test_requests_for_other_host_names_are_refused(served: PreviewServer) -> None:
    status, _, _ = raw_get(served, "/cpt-20702.html", host="attacker.example:80")
    assert status == 403
    assert raw_get(served, "/cpt-20702.html", host=f"localhost:{served.port}")[0] == 200


def test_failed_first_build_is_shown_at_the_editions_address(tmp_path: Path) -> None:
    state = BuildState(code="20702")
    state.finished("data/codes/20702.yaml:3: title <b>must</b> be text")
    (tmp_path / "dist").mkdir()
    with PreviewServer(tmp_path / "dist", state) as server:
        status, body, _ = raw_get(server, "/cpt-20702.html")
    assert status == 200 and b"the build failed" in body
    assert b"title &lt;b&gt;must&lt;/b&gt; be text" in body, "the error is shown escaped"
    assert b"data-cptpub-preview" in body, "and the page reloads once a build succeeds"


# --- what is watched ---------------------------------------------------------------------------------------


def test_watch_plan_picks_the_codes_inputs_only(project: Path) -> None:
    plan = watch_plan(Project(project), "20702")
    p = project.resolve()
    accepted = [
        "data/codes/20702.yaml",
        "data/payers.yaml",
        "notebooks/03-benchmarks.ipynb",
        "notebooks/helpers/plot.py",
        "report/styles.css",
        "report/publication.typ",
        "build/rates.duckdb",
        "build/rates.duckdb.wal",
    ]
    refused = [
        "data/codes/20705.yaml",
        "notebooks/.ipynb_checkpoints/03-benchmarks-checkpoint.ipynb",
        "notebooks/figures/x.svg",
        "notebooks/.03-benchmarks.ipynb.swp",
        "report/styles.css~",
        "build/20702/01-summary.ipynb",
        "dist/cpt-20702.html",
        "build/preview/cpt-20702.html",
        "build/.pinned/123.0.duckdb",
        "build/.rates.duckdb.123.staging",
    ]
    assert [a for a in accepted if not plan.accepts(p / a)] == []
    assert [r for r in refused if plan.accepts(p / r)] == []
    assert set(plan.describe(p)) == {
        "data/codes/20702.yaml",
        "data/payers.yaml",
        "build/rates.duckdb",
        "notebooks/",
        "report/",
    }


# --- the loop, with a stand-in build -----------------------------------------------------------------------


def fake_build(project: Project, code: str, engine, **options) -> EditionResult:
    """Writes a page with the record's title; a record containing BROKEN fails like an invalid record."""
    record = project.record_path(code)
    text = record.read_text(encoding="utf-8")
    if "BROKEN" in text:
        raise CptpubError("title: expected text", where=f"{record}:3")
    title = re.search(r"^title: (.*)$", text, re.MULTILINE).group(1)
    out = options["out_dir"] / f"cpt-{code}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!DOCTYPE html><html><body><h1>{title}</h1></body></html>", encoding="utf-8")
    return EditionResult(code=code, outputs={"html": out}, engine="fake", meta=None)  # type: ignore[arg-type]


def test_loop_rebuilds_on_change_shows_errors_and_keeps_serving(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cptpub.edition.build_edition", fake_build)
    events: list[preview.PreviewEvent] = []
    ready: queue.Queue[PreviewServer] = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(
        target=run_preview,
        args=(Project(project), "20702", object()),
        kwargs={"notify": events.append, "stop": stop, "on_ready": ready.put, "debounce_ms": 100},
        daemon=True,
    )
    worker.start()
    try:
        server = ready.get(timeout=20)
        state = lambda: json.loads(fetch(f"http://127.0.0.1:{server.port}{VERSION_PATH}")[1])  # noqa: E731
        wait_for(lambda: state()["status"] == "ok", timeout=20, what="the first build")
        assert b"Intramedullary Drug Delivery" in fetch(server.url)[1]

        record = project / "data" / "codes" / "20702.yaml"
        original = record.read_text(encoding="utf-8")
        record.write_text(original.replace("title: Intramedullary", "title: Edited Intramedullary", 1), "utf-8")
        wait_for(lambda: b"Edited Intramedullary" in fetch(server.url)[1], timeout=20, what="the rebuilt page")
        assert state()["ok_version"] == 2

        record.write_text("BROKEN\n" + original, encoding="utf-8")
        failed = wait_for(lambda: (s := state())["status"] == "failed" and s, timeout=20, what="the failure")
        assert "20702.yaml:3: title: expected text" in failed["error"] and failed["ok_version"] == 2
        status, body = fetch(server.url)
        assert status == 200 and b"Edited Intramedullary" in body, "the last good edition is still served"

        (project / "report" / "styles.css").write_text("body { color: red }\n", encoding="utf-8")
        record.write_text(original, encoding="utf-8")
        wait_for(lambda: state()["status"] == "ok", timeout=20, what="the recovery")
    finally:
        stop.set()
        worker.join(timeout=20)
    assert not worker.is_alive()
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["serving", "watching", "building"] and kinds[-1] == "stopped"
    assert "failed" in kinds and "changed" in kinds
    failure = next(e for e in events if e.kind == "failed")
    assert "title: expected text" in failure.detail
    with pytest.raises(OSError):
        fetch(server.url, timeout=2)


def test_unknown_code_is_refused_before_serving(project: Path) -> None:
    with pytest.raises(UsageError, match="no record for 20799"):
        run_preview(Project(project), "20799", object(), notify=lambda e: None)


# --- the real command --------------------------------------------------------------------------------------


def _reader(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@pytest.mark.slow
def test_preview_command_rebuilds_the_served_page_and_stops_on_sigint(tmp_path: Path, ingested_project: Path) -> None:
    root = copy_project(tmp_path / "project")
    (root / "build").mkdir()
    shutil.copy2(ingested_project / "build" / "rates.duckdb", root / "build" / "rates.duckdb")
    env = {**os.environ, "CPTPUB_PROJECT": str(root), "PYTHONUNBUFFERED": "1"}
    env.pop("CPTPUB_STORE", None)
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_PREVIEW, "preview", "20702", "--engine", "builtin"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, lines in ((process.stdout, out), (process.stderr, err)):
        threading.Thread(target=_reader, args=(stream, lines), daemon=True).start()
    seen: list[str] = []

    def printed(pattern: str):
        while not out.empty():
            seen.append(out.get())
        return next((m for line in seen if (m := re.search(pattern, line))), None)

    try:
        url = wait_for(lambda: printed(r"http://127\.0\.0\.1:(\d+)/cpt-20702\.html"), timeout=60, what="the URL")
        base = f"http://127.0.0.1:{url.group(1)}"
        state = lambda: json.loads(fetch(base + VERSION_PATH)[1])  # noqa: E731
        wait_for(lambda: state()["status"] in ("ok", "failed"), timeout=180, what="the first build")
        assert state()["status"] == "ok", state()
        status, page = fetch(url.group(0))
        assert status == 200 and b"CPT 20702: Intramedullary Drug Delivery Device" in page
        assert b"data-cptpub-preview" in page
        assert b"data-cptpub-preview" not in (root / "build" / "preview" / "cpt-20702.html").read_bytes()
        assert not (root / "dist").exists(), "preview never writes dist/ (the build's, with its manifest)"
        assert fetch(base + "/cpt-20702.pdf")[1].startswith(b"%PDF")

        record = root / "data" / "codes" / "20702.yaml"
        original = record.read_text(encoding="utf-8")
        record.write_text(original.replace("title: Intramedullary", "title: Preview-Edited Intramedullary", 1), "utf-8")
        wait_for(
            lambda: b"CPT 20702: Preview-Edited Intramedullary" in fetch(url.group(0))[1],
            timeout=180,
            interval=0.5,
            what="the served page to show the new title",
        )
        assert printed(r"changed: data/codes/20702\.yaml")

        record.write_text(original.replace("title: Intramedullary", "title: [unclosed", 1), encoding="utf-8")
        failed = wait_for(lambda: (s := state())["status"] == "failed" and s, timeout=60, what="the failure")
        assert "20702.yaml" in failed["error"]
        assert b"Preview-Edited" in fetch(url.group(0))[1], "the server keeps serving the last good edition"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
    assert process.returncode == 0, "".join(seen)
    time.sleep(0.2)
    printed("$")
    errors = []
    while not err.empty():
        errors.append(err.get())
    assert any("preview stopped" in line for line in seen)
    assert any("build of 20702 failed" in line for line in errors), "".join(errors)


def test_busy_port_and_unusable_preview_folder_are_clear_errors(project: Path) -> None:
    state = BuildState(code="20702")
    served = project / "build" / "preview"
    served.mkdir(parents=True)
    with (
        PreviewServer(served, state) as busy,
        pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{busy.port}") as caught,
    ):
        run_preview(Project(project), "20702", object(), port=busy.port, notify=lambda e: None)
    assert "--port" in str(caught.value)
    served.rmdir()
    served.write_text("a file where the preview folder should be")
    with pytest.raises(CptpubError, match="cannot use the preview folder") as caught:
        run_preview(Project(project), "20702", object(), notify=lambda e: None)
    assert caught.value.where == str(served)

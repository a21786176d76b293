"""The authoring loop behind ``cptpub preview CODE``: build one code into ``build/preview/``, serve it, rebuild on
every change.

* The edition is built with :func:`cptpub.edition.build_edition` into ``build/preview/`` (atomically, so the
  server always has a complete page to send), never into ``dist/``: ``dist/`` belongs to ``cptpub build``, whose
  manifest must always match it, and a batch running beside the preview must not delete the page being served.
  Each build reads one pinned version of the rates store, so an ingest running meanwhile changes nothing halfway.
* ``build/preview/`` is served on ``127.0.0.1`` only, on a free port unless one is asked for. Requests must name
  this address (Host check, against DNS rebinding) and may only read files inside that folder.
* The code's record, ``data/payers.yaml``, ``notebooks/``, ``report/`` and the rates store are watched
  (watchfiles); a change rebuilds the edition.
* Every HTML page the server sends gets a small script, inserted into the response only (the files on disk are
  never changed), that polls ``/__cptpub_version``: the page reloads after a successful rebuild, shows a
  "Rebuilding" note while one runs, and shows the error of a failed one. Pages with their own
  Content-Security-Policy (the catalogue) get no script: their policy would refuse it.
* A failed build is reported (terminal and page) and the server keeps running with the last good edition.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import mimetypes
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cptpub.errors import CptpubError, UsageError
from cptpub.project import Project, check_code, output_name

HOST = "127.0.0.1"
VERSION_PATH = "/__cptpub_version"
_CSP_MARKER = b'http-equiv="content-security-policy"'
_IGNORED_PARTS = frozenset({".ipynb_checkpoints", "__pycache__", "figures"})

# The script added to served HTML pages. {loaded} is the build the page belongs to, {endpoint} the version URL.
RELOAD_SCRIPT = """<script data-cptpub-preview>
(function () {
  "use strict";
  var loaded = %(loaded)d, endpoint = %(endpoint)s, delay = 700, box = null;
  function show(kind, text) {
    if (!box) {
      box = document.createElement("div");
      box.setAttribute("role", "status");
      box.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;margin:0;padding:.75rem 1rem;" +
        "font:14px/1.4 ui-monospace,monospace;white-space:pre-wrap;max-height:50vh;overflow:auto;" +
        "box-shadow:0 -2px 8px rgba(0,0,0,.25)";
      document.body.appendChild(box);
    }
    box.hidden = false;
    box.setAttribute("data-kind", kind);
    box.style.background = kind === "failed" ? "#7f1d1d" : "#1d4f7a";
    box.style.color = "#fff";
    box.textContent = text;
  }
  function hide() { if (box) { box.hidden = true; } }
  function poll() {
    fetch(endpoint, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
      delay = 700;
      if (s.ok_version !== loaded && s.status === "ok") { window.location.reload(); return; }
      if (s.status === "failed") {
        show("failed", "cptpub preview: the last build of " + s.code + " failed\\n\\n" + s.error);
      } else if (s.status === "building") {
        show("building", "cptpub preview: rebuilding " + s.code + "\\u2026");
      } else {
        hide();
      }
    }).catch(function () {
      delay = 3000;
      show("stopped", "cptpub preview: the preview server is not answering (stopped?)");
    }).then(function () { window.setTimeout(poll, delay); });
  }
  window.setTimeout(poll, delay);
})();
</script>
"""


@dataclass
class BuildState:
    """What the server tells pages: ``version`` counts finished builds, ``ok_version`` the last good one."""

    code: str
    status: str = "starting"  # starting | building | ok | failed
    version: int = 0
    ok_version: int = 0
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def building(self) -> None:
        with self.lock:
            self.status = "building"

    def finished(self, error: str | None) -> None:
        with self.lock:
            self.version += 1
            if error is None:
                self.ok_version = self.version
                self.status, self.error = "ok", ""
            else:
                self.status, self.error = "failed", error

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "code": self.code,
                "status": self.status,
                "version": self.version,
                "ok_version": self.ok_version,
                "error": self.error,
            }


def inject_reload_script(page: bytes, loaded: int) -> bytes:
    """``page`` with the reload script before its last ``</body>`` (or at its end); unchanged if it has a CSP."""
    if _CSP_MARKER in page.lower():
        return page
    script = (RELOAD_SCRIPT % {"loaded": loaded, "endpoint": json.dumps(VERSION_PATH)}).encode("utf-8")
    at = page.lower().rfind(b"</body>")
    return page + script if at < 0 else page[:at] + script + page[at:]


def _status_page(state: dict[str, object]) -> bytes:
    """Shown at the edition's address while it has never been built successfully."""
    code = html.escape(str(state["code"]))
    if state["status"] == "failed":
        body = f"<h1>CPT {code}: the build failed</h1>\n<pre>{html.escape(str(state['error']))}</pre>"
    else:
        body = f"<h1>CPT {code}: building…</h1>\n<p>The page reloads when the edition is ready.</p>"
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>cptpub preview – CPT {code}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
    return page.encode("utf-8")


class PreviewServer:
    """A folder (the preview's, or any) over HTTP on 127.0.0.1, with the version endpoint and the reload script."""

    def __init__(self, dist_dir: Path, state: BuildState, *, port: int = 0):
        self.dist_dir = Path(dist_dir).resolve()
        self.state = state
        self.edition = output_name(state.code, "html")
        self.httpd = ThreadingHTTPServer((HOST, port), self._handler())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/{self.edition}"

    def start(self) -> PreviewServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="cptpub-preview", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def resolve(self, url_path: str) -> Path | None:
        """The file in the served folder a request path names, or None: no dot-files, nothing outside it."""
        parts = [p for p in unquote(url_path).split("/") if p]
        if not parts or any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        path = self.dist_dir.joinpath(*parts).resolve()
        if not path.is_relative_to(self.dist_dir) or not path.is_file():
            return None
        return path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "cptpub-preview"

            def version_string(self) -> str:
                return self.server_version

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass  # the terminal shows builds, not every request

            def do_HEAD(self) -> None:
                self._serve(send_body=False)

            def do_GET(self) -> None:
                self._serve(send_body=True)

            def _send(self, status: int, body: bytes, content_type: str, send_body: bool, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _serve(self, send_body: bool) -> None:
                if self.headers.get("Host", "") not in (f"{HOST}:{server.port}", f"localhost:{server.port}"):
                    self._send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain; charset=utf-8", send_body)
                    return
                path = urlsplit(self.path).path
                if path == VERSION_PATH:
                    body = json.dumps(server.state.snapshot()).encode("utf-8")
                    self._send(HTTPStatus.OK, body, "application/json", send_body)
                    return
                if path == "/favicon.ico" and server.resolve(path) is None:  # browsers ask; none is no error
                    self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", send_body)
                    return
                if path in ("", "/"):
                    self._send(HTTPStatus.FOUND, b"", "text/plain", send_body, Location=f"/{server.edition}")
                    return
                loaded = server.state.ok_version  # read before the file: the page is never older than this
                file = server.resolve(path)
                if file is None and path == f"/{server.edition}":
                    page = inject_reload_script(_status_page(server.state.snapshot()), loaded)
                    self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", send_body)
                    return
                if file is None:
                    body = b"not found\n"
                    if path == "/index.html":
                        body = b"the preview serves one edition; `cptpub build --all` writes the catalogue in dist/\n"
                    self._send(HTTPStatus.NOT_FOUND, body, "text/plain; charset=utf-8", send_body)
                    return
                data = file.read_bytes()
                content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                if content_type == "text/html":
                    data = inject_reload_script(data, loaded)
                if content_type.startswith("text/") or content_type in ("application/json", "image/svg+xml"):
                    content_type += "; charset=utf-8"
                self._send(HTTPStatus.OK, data, content_type, send_body)

        return Handler


# --- watching --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchPlan:
    """What ``preview`` watches: folders handed to watchfiles and the filter that picks the relevant changes."""

    roots: tuple[Path, ...]
    files: frozenset[Path]  # single files (record, payers, store files)
    trees: tuple[Path, ...]  # folders whose whole content counts (notebooks/, report/)

    def accepts(self, path: str | Path) -> bool:
        p = Path(path)
        p = p if p.is_absolute() else p.resolve()
        if p.name.startswith((".", "#", "~")) or p.name.endswith(("~", ".swp", ".swx", ".tmp", ".pyc")):
            return False
        if p in self.files:
            return True
        for tree in self.trees:
            if p.is_relative_to(tree):
                rest = p.relative_to(tree).parts
                return not any(part in _IGNORED_PARTS or part.startswith(".") for part in rest)
        return False

    def describe(self, root: Path) -> list[str]:
        def rel(p: Path) -> str:
            return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

        listed = sorted(rel(f) for f in self.files if not f.name.endswith(".wal"))
        return listed + [rel(t) + "/" for t in self.trees]


def watch_plan(project: Project, code: str) -> WatchPlan:
    record = project.record_path(code).resolve()
    payers = project.payers_file.resolve()
    store = project.store_path.resolve()
    trees = tuple(p.resolve() for p in (project.notebooks_dir, project.report_dir))
    files = frozenset({record, payers, store, store.with_name(store.name + ".wal")})
    roots = {record.parent, payers.parent, *trees}
    if store.parent.is_dir():
        roots.add(store.parent)
    return WatchPlan(roots=tuple(sorted(r for r in roots if r.is_dir())), files=files, trees=trees)


# --- the loop --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewEvent:
    kind: str  # serving | watching | building | built | failed | changed | stopped
    message: str
    detail: str = ""


Notify = Callable[[PreviewEvent], None]


def build_once(project: Project, code: str, engine: object, state: BuildState, notify: Notify, **build_options) -> bool:
    """One build into ``build/preview/``; any error is reported and kept in ``state``, never raised (the server
    must keep running)."""
    from cptpub.edition import build_edition
    from cptpub.store import RatesStore

    state.building()
    notify(PreviewEvent("building", f"building {code} ..."))
    started = time.perf_counter()
    try:
        with RatesStore(project.store_path).pinned() as store:
            result = build_edition(
                dataclasses.replace(project, store=store),
                code,
                engine,  # type: ignore[arg-type]
                out_dir=preview_dir(project),
                workdir=project.build_dir / "preview-work" / code,
                **build_options,
            )
    except CptpubError as exc:
        state.finished(str(exc))
        notify(PreviewEvent("failed", f"build of {code} failed", str(exc)))
        return False
    except Exception as exc:  # a bug or an unexpected library error: show it, keep serving
        detail = "".join(traceback.format_exception(exc)).rstrip()
        state.finished(f"{type(exc).__name__}: {exc}")
        notify(PreviewEvent("failed", f"build of {code} failed unexpectedly", detail))
        return False
    seconds = time.perf_counter() - started
    state.finished(None)
    files = ", ".join(_relative(project, p) for p in result.outputs.values())
    notify(PreviewEvent("built", f"built {code} in {seconds:.1f}s: {files}"))
    return True


def run_preview(
    project: Project,
    code: str,
    engine: object,
    *,
    port: int = 0,
    notify: Notify,
    stop: threading.Event | None = None,
    on_ready: Callable[[PreviewServer], None] | None = None,
    debounce_ms: int = 300,
    **build_options,
) -> None:
    """Serve and rebuild until ``stop`` is set or the process is interrupted (Ctrl-C)."""
    import watchfiles

    from cptpub.publishable import codes_with_rates

    code = check_code(code)
    if not project.record_path(code).is_file() and code not in codes_with_rates(project.store_path):
        raise UsageError(
            f"no record for {code} and no rates in the store",
            where=project.record_path(code),
            hint=f"add one with `cptpub new {code}`, or ingest rates for it",
        )
    served = preview_dir(project)
    try:
        served.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CptpubError(f"cannot use the preview folder: {exc.strerror or exc}", where=served) from None
    # So a rates store that an ingest creates while the preview runs is noticed too.
    with contextlib.suppress(OSError):
        project.store_path.parent.mkdir(parents=True, exist_ok=True)
    plan = watch_plan(project, code)
    state = BuildState(code=code)
    try:
        server = PreviewServer(served, state, port=port)
    except OSError as exc:
        raise UsageError(
            f"cannot serve on {HOST}:{port}: {exc.strerror or exc}",
            hint="choose another --port, or leave it out to use a free one",
        ) from None
    try:
        server.start()
        notify(PreviewEvent("serving", f"preview of CPT {code}: {server.url}", "press Ctrl-C to stop"))
        notify(PreviewEvent("watching", "watching " + ", ".join(plan.describe(project.root.resolve()))))
        if on_ready:
            on_ready(server)
        build_once(project, code, engine, state, notify, **build_options)
        for changes in watchfiles.watch(
            *plan.roots,
            watch_filter=lambda _change, path: plan.accepts(path),
            debounce=debounce_ms,
            stop_event=stop,
            raise_interrupt=True,
        ):
            changed = sorted({_relative(project, Path(path)) for _, path in changes})
            notify(PreviewEvent("changed", "changed: " + ", ".join(_first(changed, 5))))
            build_once(project, code, engine, state, notify, **build_options)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        notify(PreviewEvent("stopped", "preview stopped"))


def preview_dir(project: Project) -> Path:
    """Where ``preview`` builds and serves (``build/preview/``): never ``dist/``."""
    return project.build_dir / "preview"


def _relative(project: Project, path: Path) -> str:
    root = project.root.resolve()
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _first(items: Iterable[str], n: int) -> list[str]:
    items = list(items)
    return items if len(items) <= n else [*items[:n], f"and {len(items) - n} more"]

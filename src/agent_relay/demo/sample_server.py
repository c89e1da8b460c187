"""A sample local agent server, shaped like the one in the deployment story: workspaces
and their repos in SQLite, a server-sent event stream, and a WebSocket terminal.

It is an ordinary Starlette app on uvicorn, as a user's own server would be; the demo
puts it behind the host connector. It knows nothing of the relay, except that it shows
the ``x-vk-relayed`` header the connector adds. ``/api/blob`` streams bulk bytes both ways
for the end-to-end tests and the benchmark.

Run on its own: ``python -m agent_relay.demo.sample_server --port 8081 --database PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS repos (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL, url TEXT NOT NULL
);
"""
_SEED = {
    "agent-relay": ["agent-relay", "vibe-kanban"],
    "homelab": ["cluster-manifests"],
}
_MAX_NAME = 200
_EVENT_QUEUE = 64  # per listener; a listener that falls behind loses events, not memory
# /api/blob: byte k of a blob is k % 251 (a prime, so chunks never line up with it).
MAX_BLOB = 16 * 1024**3  # both ways
_BLOB_PERIOD = 251
_BLOB_CHUNK = 64 * 1024
_BLOB_PATTERN = bytes(range(_BLOB_PERIOD)) * (_BLOB_CHUNK // _BLOB_PERIOD + 2)


def blob_bytes(offset: int, length: int) -> bytes:
    """Bytes ``offset`` to ``offset + length`` of every blob (``length`` <= 64 KiB)."""
    start = offset % _BLOB_PERIOD
    return _BLOB_PATTERN[start : start + length]


class Events:
    """Fan-out of server-sent events to whoever listens, each with a bounded queue."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self._listeners:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @contextlib.contextmanager
    def listen(self) -> Any:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_EVENT_QUEUE)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)


class Workspaces:
    """The SQLite data behind the API (small and local: plain sqlite3 is enough)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        if not self._db.execute("SELECT 1 FROM workspaces LIMIT 1").fetchone():
            for name, repos in _SEED.items():
                workspace = self.add_workspace(name)
                for repo in repos:
                    self.add_repo(workspace["id"], repo, f"https://git.example/{repo}.git")

    def list_workspaces(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM workspaces ORDER BY created_at").fetchall()
        return [dict(row) for row in rows]

    def get_workspace(self, workspace_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM workspaces WHERE id = ?", (workspace_id,))
        found = row.fetchone()
        return dict(found) if found else None

    def add_workspace(self, name: str) -> dict[str, Any]:
        workspace = {"id": str(uuid.uuid4()), "name": name, "created_at": time.time()}
        with self._db:
            self._db.execute("INSERT INTO workspaces VALUES (:id, :name, :created_at)", workspace)
        return workspace

    def list_repos(self, workspace_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, name, url FROM repos WHERE workspace_id = ? ORDER BY name",
            (workspace_id,),
        ).fetchall()
        return [dict(row) for row in rows]

    def add_repo(self, workspace_id: str, name: str, url: str) -> dict[str, Any]:
        repo = {"id": str(uuid.uuid4()), "workspace_id": workspace_id, "name": name, "url": url}
        with self._db:
            self._db.execute("INSERT INTO repos VALUES (:id, :workspace_id, :name, :url)", repo)
        return repo

    def close(self) -> None:
        self._db.close()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_name(request: Request) -> str | JSONResponse:
    try:
        payload = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        return _error(400, "body must be JSON")
    name = payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        return _error(400, f"name must be a non-empty string of at most {_MAX_NAME} characters")
    return name.strip()


def create_app(database: Path, *, tick_seconds: float = 2.0) -> Starlette:
    data = Workspaces(database)
    events = Events()

    async def index(request: Request) -> Response:
        relayed = request.headers.get("x-vk-relayed") == "1"
        return HTMLResponse(
            "<!doctype html><title>sample agent server</title>"
            "<h1>Sample local agent server</h1>"
            f"<p>Reached {'through the relay' if relayed else 'directly'}.</p>"
            "<p>Try <code>/api/workspaces</code>, <code>/api/events</code> (SSE) and the "
            "WebSocket <code>/api/terminal</code>.</p>"
        )

    async def whoami(request: Request) -> Response:
        return JSONResponse(
            {"relayed": request.headers.get("x-vk-relayed") == "1", "path": request.url.path}
        )

    async def workspaces(request: Request) -> Response:
        if request.method == "POST":
            name = await _json_name(request)
            if isinstance(name, JSONResponse):
                return name
            workspace = data.add_workspace(name)
            events.publish({"type": "workspace_created", "workspace": workspace})
            return JSONResponse(workspace, status_code=201)
        return JSONResponse({"workspaces": data.list_workspaces()})

    async def repos(request: Request) -> Response:
        workspace_id = request.path_params["workspace_id"]
        if data.get_workspace(workspace_id) is None:
            return _error(404, "no such workspace")
        if request.method == "POST":
            name = await _json_name(request)
            if isinstance(name, JSONResponse):
                return name
            repo = data.add_repo(workspace_id, name, f"https://git.example/{name}.git")
            events.publish({"type": "repo_added", "repo": repo})
            return JSONResponse(repo, status_code=201)
        return JSONResponse({"repos": data.list_repos(workspace_id)})

    async def event_stream(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            with events.listen() as queue:
                yield b"retry: 2000\n\nevent: hello\ndata: {}\n\n"
                tick = 0
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), tick_seconds)
                        kind = event["type"]
                    except TimeoutError:
                        tick += 1
                        kind, event = "tick", {"type": "tick", "n": tick, "at": time.time()}
                    yield f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def blob(request: Request) -> Response:
        """GET ``?size=BYTES`` streams that many deterministic bytes; POST hashes the
        streamed body and answers ``{"sha256": hex, "bytes": n}``."""
        if request.method == "POST":
            digest = hashlib.sha256()
            received = 0
            async for chunk in request.stream():
                digest.update(chunk)
                received += len(chunk)
            return JSONResponse({"sha256": digest.hexdigest(), "bytes": received})
        raw = request.query_params.get("size", "")
        if not raw.isdigit() or int(raw) > MAX_BLOB:
            return _error(400, f"size must be a whole number of bytes up to {MAX_BLOB}")
        size = int(raw)

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, size, _BLOB_CHUNK):
                yield blob_bytes(offset, min(_BLOB_CHUNK, size - offset))

        return StreamingResponse(
            chunks(),
            media_type="application/octet-stream",
            headers={"content-length": str(size)},
        )

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("sample terminal: every line comes back\r\n$ ")
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await websocket.send_bytes(message["bytes"])
                else:
                    await websocket.send_text(f"{message.get('text', '')}\r\n$ ")
        except WebSocketDisconnect:
            return

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        data.close()

    app = Starlette(
        lifespan=lifespan,
        max_body_size=1024 * 1024,
        routes=[
            Route("/", index),
            Route("/api/whoami", whoami),
            Route("/api/workspaces", workspaces, methods=["GET", "POST"]),
            Route("/api/workspaces/{workspace_id}/repos", repos, methods=["GET", "POST"]),
            Route("/api/events", event_stream),
            Route("/api/blob", blob, methods=["GET", "POST"], max_body_size=MAX_BLOB),
            WebSocketRoute("/api/terminal", terminal),
        ],
    )
    return app


class RunningServer:
    """The sample server on uvicorn inside the current event loop (signals stay with the
    caller, which stops it)."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the demo handles Ctrl-C and SIGTERM itself

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("sample server stopped during start")
            await asyncio.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


def main(argv: Sequence[str] | None = None) -> None:
    """The sample server as its own process (uvicorn handles SIGTERM and Ctrl-C)."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m agent_relay.demo.sample_server", description=main.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--database", type=Path, default=Path("sample-agent.sqlite3"))
    parser.add_argument("--tick-seconds", type=float, default=2.0, help="SSE tick interval")
    args = parser.parse_args(argv)
    if args.tick_seconds <= 0:
        parser.error("--tick-seconds must be positive")
    app = create_app(args.database, tick_seconds=args.tick_seconds)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # event streams never end on their own
    )


if __name__ == "__main__":
    main()

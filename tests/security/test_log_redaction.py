"""Issue 11 item 10: session ids stay out of every log line, not only the relay's own
error line: httpx's request lines, a connector's or a library's messages and tracebacks
go through the command line's log handlers, which mask them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

from agent_relay.logredact import redact


def test_the_command_lines_logging_masks_session_ids_of_any_logger() -> None:
    host, session, signing = (str(uuid.uuid4()) for _ in range(3))
    script = textwrap.dedent(
        f"""
        import http.server, logging, threading
        import httpx
        from agent_relay.cli.common import setup_logging

        class Quiet(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        setup_logging(False)
        port = server.server_address[1]
        # httpx logs each request line (INFO), the session id in the URL included.
        httpx.get(f"http://127.0.0.1:{{port}}/v1/relay/h/{host}/s/{session}/api/x?a=1")
        logging.getLogger("agent_relay.host.forward").info(
            "x-vk-sig-session: {signing} refused"
        )
        try:
            raise RuntimeError("at /v1/relay/h/{host}/s/{session}")
        except RuntimeError:
            logging.getLogger("somewhere").exception("failed")
        server.shutdown()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    err = done.stderr
    for logged in ("HTTP Request: GET", "refused", "RuntimeError"):
        assert logged in err, err
    assert host in err  # the host id is no secret
    assert session not in err, err
    assert signing not in err, err


def test_redact_masks_both_kinds_and_keeps_the_rest() -> None:
    line = '/v1/relay/h/H1/s/5e0c/api?x=1 {"signing_session_id": "ab12cd34-x"}'
    assert redact(line) == '/v1/relay/h/H1/s/…/api?x=1 {"signing_session_id": "…"}'
    assert redact("x-vk-sig-session=0123456789abcdef&b=2") == "x-vk-sig-session=…&b=2"

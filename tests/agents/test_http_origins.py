"""The http capability grants origins (scheme, host, port), not host names, and its
configured headers go only to the origin they were configured for.

Real loopback servers on two ports stand in for an API the agent may call and another
local service (a database admin port) that it must not reach.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.capabilities import HttpCapability

SECRET = "sk-origin-SECRET-77"

PROBE = '''
async def run(event, step):
    out = {}
    for name, url in event.payload["urls"].items():
        try:
            out[name] = await step.do(f"{name}", lambda: env.http.get_json(url),
                                      retries={"limit": 0})
        except StepError as e:
            out[name] = ["error", e.error_name, str(e)]
    return out
'''


class _Server:
    """A loopback HTTP server that records every request's headers."""

    def __init__(self) -> None:
        seen: list[dict[str, str]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps({"port": self.server.server_address[1],
                                   "auth": self.headers.get("authorization")}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    api, admin = _Server(), _Server()
    try:
        yield api, admin
    finally:
        api.close()
        admin.close()


async def _run(af: AgentFlow, cap: HttpCapability, urls: dict[str, str]) -> Any:
    agent = af.agent("origins", capabilities={"http": cap})
    await agent.submit_plan("probe", PROBE)
    status = await (await agent.start("probe", params={"urls": urls})).wait(timeout=30)
    assert status.status == "complete", status.error
    return status.output


async def test_a_granted_origin_does_not_open_another_port_of_the_same_host(
        af: AgentFlow, servers: tuple[_Server, _Server]) -> None:
    api, admin = servers
    cap = HttpCapability([f"localhost:{api.port}"], allow_http=True,
                         headers={"Authorization": f"Bearer {SECRET}"})
    out = await _run(af, cap, {
        "api": f"http://localhost:{api.port}/v1",
        "admin": f"http://localhost:{admin.port}/_admin",
        "default_port": "http://localhost/",
    })
    assert out["api"] == {"port": api.port, "auth": f"Bearer {SECRET}"}
    assert out["admin"][:2] == ["error", "CapabilityError"]
    assert f"origin http://localhost:{admin.port} is not in this agent's allowlist" in (
        out["admin"][2])
    assert out["default_port"][:2] == ["error", "CapabilityError"]
    assert admin.seen == []  # refused before any byte left the host
    assert len(api.seen) == 1


async def test_a_host_without_a_port_means_the_default_port_only(
        af: AgentFlow, servers: tuple[_Server, _Server]) -> None:
    api, _admin = servers
    cap = HttpCapability(["localhost"], allow_http=True)
    out = await _run(af, cap, {"api": f"http://localhost:{api.port}/"})
    assert out["api"][:2] == ["error", "CapabilityError"]
    assert "default port" in out["api"][2]
    assert api.seen == []


async def test_headers_go_only_to_the_origin_they_were_configured_for(
        af: AgentFlow, servers: tuple[_Server, _Server]) -> None:
    api, other = servers
    cap = HttpCapability([f"http://localhost:{api.port}", f"http://localhost:{other.port}"],
                         allow_http=True,
                         headers={f"http://localhost:{api.port}": {
                             "Authorization": f"Bearer {SECRET}"}})
    out = await _run(af, cap, {"api": f"http://localhost:{api.port}/",
                               "other": f"http://localhost:{other.port}/"})
    assert out["api"] == {"port": api.port, "auth": f"Bearer {SECRET}"}
    assert out["other"] == {"port": other.port, "auth": None}
    assert all(SECRET not in json.dumps(h) for h in other.seen)
    assert len(other.seen) == 1


def test_malformed_origins_and_header_origins_are_refused() -> None:
    with pytest.raises(ValueError, match="without a path"):
        HttpCapability(["https://api.example.com/v1"])
    with pytest.raises(ValueError, match="scheme must be https or http"):
        HttpCapability(["ftp://api.example.com"])
    with pytest.raises(ValueError, match="not allowed"):
        HttpCapability(["api.example.com"],
                       headers={"https://evil.example.net": {"Authorization": "x"}})


def test_describe_lists_origins_not_secrets() -> None:
    cap = HttpCapability(["API.example.com:8443"],
                         headers={"Authorization": f"Bearer {SECRET}"})
    described = cap.describe()
    assert described["allow_hosts"] == ["api.example.com:8443"]
    assert SECRET not in json.dumps(described)

"""The JSON frame protocol: size caps before reading, strict JSON, untrusted errors."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import sandbox._namespace as namespace_module
from sandbox import MessageTooLargeError, PlanRuntimeError, RemoteError, WorkerPool
from sandbox._protocol import (
    FrameBuffer,
    ProtocolError,
    encode_frame,
    error_payload,
    read_error,
)
from tests.sandbox.support import RecordingHost, make_event, plan

PACKAGE = Path(__file__).resolve().parents[2] / "sandbox"


def test_frames_round_trip_across_arbitrary_chunks() -> None:
    frames = b"".join(encode_frame({"t": "x", "n": i, "s": "é\ud800"}, 1024)
                      for i in range(3))
    buffer = FrameBuffer(1024)
    received: list[dict[str, Any]] = []
    for i in range(len(frames)):
        received += buffer.feed(frames[i:i + 1])
    assert [m["n"] for m in received] == [0, 1, 2]
    assert received[0]["s"] == "é\ud800"  # lone surrogates survive as JSON escapes


def test_an_oversized_frame_is_refused_from_its_header() -> None:
    buffer = FrameBuffer(1024)
    with pytest.raises(ProtocolError, match="over the max_message_bytes limit"):
        buffer.feed((1 << 31).to_bytes(4, "big"))  # no body needed to refuse it
    with pytest.raises(MessageTooLargeError):
        encode_frame({"t": "x", "blob": "y" * 2000}, 1024)


@pytest.mark.parametrize("body", [b"{bad", b"[1]", b'{"t": 1}', b'{"t": "x", "v": NaN}',
                                  b'{"t": "x", "v": Infinity}', b"\xff\xfe",
                                  b'{"t": "x", "n": ' + b"9" * 5000 + b"}",
                                  b"[" * 100_000 + b"]" * 100_000])
def test_anything_but_a_strict_json_object_is_a_protocol_error(body: bytes) -> None:
    buffer = FrameBuffer(1 << 20)
    with pytest.raises(ProtocolError):
        buffer.feed(len(body).to_bytes(4, "big") + body)


def test_values_must_be_strict_json() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        encode_frame({"t": "x", "v": float("nan")}, 1024)
    with pytest.raises(TypeError):
        encode_frame({"t": "x", "v": object()}, 1024)


def test_error_payloads_from_a_peer_are_validated() -> None:
    assert read_error(error_payload(KeyError("k"))) == ("KeyError", "'k'", None, ["k"])
    remote = error_payload(RemoteError("NonRetryableError", "stop"))
    assert read_error(remote) == ("NonRetryableError", "stop", "NonRetryableError", ["stop"])
    bad: object
    for bad in [None, [], {"name": "x y", "message": ""}, {"name": "A", "message": 1},
                {"name": "A", "message": "", "error_name": "<script>"},
                {"name": "A", "message": "", "args": "no"}]:
        with pytest.raises(ProtocolError):
            read_error(bad)


def test_the_host_never_unpickles_or_evaluates_worker_data() -> None:
    forbidden = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "copyreg"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {a.name.split(".")[0] for a in node.names}
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
                assert not names & forbidden, (path.name, names)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                # exec runs compiled plans (worker side) and test probes only.
                assert node.func.id != "eval", path.name
                if node.func.id == "exec":
                    assert path.name in ("_runtime.py", "_worker.py"), path.name


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert max(sizes.values()) < 420, sizes


class _Named(Exception):
    pass


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
async def test_base_exceptions_never_leave_plan_code(monkeypatch: pytest.MonkeyPatch,
                                                     name: str) -> None:
    # Plans cannot name these classes; make the host smuggle one in to test the wrapper.
    monkeypatch.setitem(namespace_module.PLAN_EXCEPTIONS, name, getattr(__builtins__, name)
                        if not isinstance(__builtins__, dict) else __builtins__[name])
    smuggled = type(name, (_Named,), {})
    host = RecordingHost(fail={"boom": smuggled("from the host")})

    async def raising_capability(*_args: Any) -> Any:
        raise smuggled("from a capability")

    async with WorkerPool(isolation="inline") as pool:
        with pytest.raises(PlanRuntimeError) as caught:
            await pool.run_plan("a", plan('await step.sleep("boom", 1)'), make_event(), host,
                                capabilities=[])
        assert caught.value.error_name == name
        body_host = RecordingHost(capability=raising_capability)
        with pytest.raises(PlanRuntimeError):
            await pool.run_plan("a", plan('return await step.do("b", lambda: env.kv.get(1))'),
                                make_event(), body_host, capabilities=["kv"])
        (error,) = body_host.body_errors
        assert isinstance(error, RemoteError) and error.error_name == name
        # The event loop and the agent's runtime are unharmed.
        assert await pool.run_plan("a", plan("return 'ok'"), make_event(), host,
                                   capabilities=[]) == "ok"
    assert asyncio.get_running_loop().is_running()


def test_json_is_the_only_format() -> None:
    frame = encode_frame({"t": "done", "run": 1, "value": [1, "a", None]}, 1024)
    assert json.loads(frame[4:]) == {"t": "done", "run": 1, "value": [1, "a", None]}


async def test_workers_receive_source_text_never_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox._connection import InlineConnection

    sent: list[dict[str, Any]] = []
    real_send = InlineConnection.send

    def spy(self: InlineConnection, message: dict[str, Any]) -> None:
        sent.append(message)
        real_send(self, message)

    monkeypatch.setattr(InlineConnection, "send", spy)
    source = plan("return 7")
    async with WorkerPool(isolation="inline") as pool:
        assert await pool.run_plan("a", source, make_event(), RecordingHost(),
                                   capabilities=["kv"]) == 7
    (run,) = [m for m in sent if m["t"] == "run"]
    assert run == {"t": "run", "run": 1, "source": source, "filename": "<plan>",
                   "event": make_event(), "caps": ["kv"]}

"""The message protocol between host and worker: length-prefixed JSON, size-capped.

A frame is a 4-byte big-endian length and that many bytes of ASCII JSON (an object with
a ``"t"`` type field). Both sides refuse frames over ``max_message_bytes`` before
reading them. JSON is the only format: the host never unpickles or evaluates anything a
worker sends, and treats every field as untrusted data.

Messages (``run`` is the run id, ``call``/``body`` are per-run ids):

    host -> worker                              worker -> host
    run      source, filename, event, caps      ready        layers (once, at start)
    step_ok  run, call, value[, kind]           step         run, call, op, args[, dt]
    step_err run, call, error                   body_ok      run, call, body, value[, kind]
    body     run, call, body                    body_err     run, call, body, error
    body_cancel run, body                       cap          run, call, name, method,
    cap_ok   run, call, value[, kind]                        args, kwargs
    cap_err  run, call, error                   done         run, value[, kind]
    cancel   run                                fail         run, error
    ping     seq                                cancelled    run
    probe    code (tests only)                  body_cancelled run, call, body[, logs]
                                                pong         seq
                                                fatal        reason
                                                probe_result value | error

A value is JSON; ``kind == "datetime"`` marks a top-level datetime sent as ISO text. An
error is ``{"name", "message"[, "error_name"][, "args"]}``.
"""

from __future__ import annotations

import json
import re
import struct
from datetime import datetime
from typing import Any

from sandbox._errors import MessageTooLargeError, PlanRuntimeError, RemoteError

__all__ = ["FrameBuffer", "ProtocolError", "decode_datetimes", "encode_frame", "error_payload",
           "need_field", "pack_value", "unpack_value"]

_HEADER = struct.Struct(">I")
_MAX_MESSAGE_TEXT = 8 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}\Z")


class ProtocolError(Exception):
    """A peer sent something that is not a valid message."""


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not valid JSON")


# Built once: json.dumps/json.loads with options build a new encoder/decoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                            default=_json_default)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def encode_frame(message: dict[str, Any], limit: int) -> bytes:
    """Encode one message as a frame.

    Raises:
        MessageTooLargeError: the encoded message is over ``limit`` bytes.
        TypeError, ValueError: the message holds a value JSON cannot encode.
    """
    body = _ENCODER.encode(message).encode("ascii")
    if len(body) > limit:
        raise MessageTooLargeError(f"a message of {len(body):,} bytes is over the "
                                   f"max_message_bytes limit of {limit:,}")
    return _HEADER.pack(len(body)) + body


class FrameBuffer:
    """Reassembles frames from a byte stream and decodes them, enforcing the size cap."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return every complete message. Raises `ProtocolError`."""
        return [message for message, _size in self.feed_sized(data)]

    def feed_sized(self, data: bytes) -> list[tuple[dict[str, Any], int]]:
        """`feed`, with each message's size in bytes on the wire."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._limit:
                raise ProtocolError(f"peer announced a message of {size:,} bytes, over the "
                                    f"max_message_bytes limit of {self._limit:,}")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            messages.append((decode_body(body), size))
        return messages


def decode_body(body: bytes) -> dict[str, Any]:
    """Decode one frame body into a message dict. Raises `ProtocolError`."""
    try:
        message = _DECODER.decode(body.decode("utf-8"))
    except ProtocolError:
        raise
    except Exception as exc:  # bad UTF-8, bad JSON, too deep, int too long ...
        raise ProtocolError(f"undecodable message: {type(exc).__name__}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("a message must be a JSON object with a string 't'")
    return message


def pack_value(value: Any) -> dict[str, Any]:
    """The message fields carrying ``value`` (a top-level datetime keeps its type)."""
    if isinstance(value, datetime):
        return {"value": value.isoformat(), "kind": "datetime"}
    return {"value": value}


def unpack_value(message: dict[str, Any]) -> Any:
    """The value carried by a message built with `pack_value`. Raises `ProtocolError`."""
    value = message.get("value")
    if message.get("kind") == "datetime":
        if not isinstance(value, str):
            raise ProtocolError("a datetime value must be ISO text")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ProtocolError("a datetime value must be ISO text") from None
    return value


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Describe an exception for the other side: name, message, and simple args.

    Errors that carry the name of an original error (``error_name``, as the sandbox's
    `RemoteError`/`PlanRuntimeError` and the engine's `StepError` do) keep it.

    Never raises, and the result always encodes as a frame: the exception may be the
    plan's, and a run whose error cannot be reported would leave the host waiting
    forever (``str(exc)`` can raise, e.g. RecursionError for a deeply nested argument
    or ValueError for a huge int; ``float("nan")`` is not JSON).
    """
    name = type(exc).__name__
    error_name = getattr(exc, "error_name", None)
    if isinstance(exc, RemoteError | PlanRuntimeError) and _NAME.match(exc.error_name):
        name = exc.error_name  # a body's or plan's error passed through: keep its class
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        try:
            message = str(exc)
        except Exception:
            message = f"<the message of this {name} cannot be shown>"
    payload: dict[str, Any] = {"name": name, "message": message[:_MAX_MESSAGE_TEXT]}
    if isinstance(error_name, str) and _NAME.match(error_name):
        payload["error_name"] = error_name
    args = (message,) if isinstance(exc, RemoteError | PlanRuntimeError) else exc.args
    if (isinstance(args, tuple) and len(args) <= 4 and all(
            isinstance(a, str | int | float | bool) or a is None for a in args)
            and sum(len(a) for a in args if isinstance(a, str)) <= _MAX_MESSAGE_TEXT
            and _encodes(list(args))):
        payload["args"] = list(args)
    return payload


def _encodes(value: list[Any]) -> bool:
    try:
        _ENCODER.encode(value)
    except ValueError:  # NaN or infinity, an int over the digit limit
        return False
    return True


def read_error(payload: object) -> tuple[str, str, str | None, list[Any] | None]:
    """Validate an error payload from the peer: ``(name, message, error_name, args)``."""
    if not isinstance(payload, dict):
        raise ProtocolError("an error must be a JSON object")
    name, message = payload.get("name"), payload.get("message")
    if not isinstance(name, str) or not _NAME.match(name) or not isinstance(message, str):
        raise ProtocolError("an error needs a class-like 'name' and a string 'message'")
    error_name = payload.get("error_name")
    if error_name is not None and not (isinstance(error_name, str) and _NAME.match(error_name)):
        raise ProtocolError("'error_name' must be a class-like name")
    args = payload.get("args")
    if args is not None and not isinstance(args, list):
        raise ProtocolError("'args' must be a list")
    return name, message[:_MAX_MESSAGE_TEXT], error_name, args


def need_field(message: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``message[key]`` if it is of type ``kind`` (a bool is no int); else `ProtocolError`."""
    value = message.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ProtocolError(f"message {message.get('t')!r} needs {key!r} of type {kind}")
    return value


def decode_datetimes(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A step message's args with the fields its ``dt`` names read back as datetimes."""
    fields = message.get("dt") or []
    if not isinstance(fields, list):
        raise ProtocolError("'dt' must be a list of field names")
    if "when" in fields and isinstance(args.get("when"), str):
        try:
            args = {**args, "when": datetime.fromisoformat(args["when"])}
        except ValueError:
            raise ProtocolError("'when' is not ISO datetime text") from None
    return args

"""Who may use the console, and what proves it: operators, sessions, CSRF tokens, and
signed approval links.

- **Operators** are configured by the person who runs ``agentflow serve`` (never the
  agents' MCP tokens): each has a name, a secret token and a role, ``operator`` (may act)
  or ``read-only`` (may look).
- **Sessions.** Signing in with a token sets a cookie that carries the operator's name,
  role, a random CSRF token and an expiry, signed with HMAC-SHA256 under the console's
  secret. The cookie is ``HttpOnly`` and ``SameSite=Strict`` (and ``Secure`` over TLS).
- **CSRF.** Every state-changing request must carry the session's CSRF token in its
  form (the synchronizer-token pattern); ``SameSite`` alone is not relied on.
- **Approval links** carry ``instance id, the wait's ref, expiry, nonce`` signed with
  the same secret. A link answers one wait: the decision is delivered only if the
  instance still waits at exactly that wait (checked in the send's own transaction),
  and the nonce is recorded as used, so a second use is refused and says so.

- **Failed sign-ins are limited** (`SignInLimit`): a token bucket per client address
  and one for everyone. A client that has used up its attempts gets ``429 Too Many
  Requests`` with ``Retry-After`` (its next attempt, right token or wrong, is not even
  checked before then); buckets refill, so nobody is locked out for good. Successful
  sign-ins cost nothing. The buckets live in the process: each ``serve`` process
  counts its own.

What this is not: there is no password store, and no revocation of a session before it
expires other than changing the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "LinkClaims",
    "Operator",
    "Session",
    "SignInLimit",
    "SignInLimiter",
    "Signer",
    "parse_operators",
]

Role = Literal["operator", "read-only"]
ROLES: tuple[Role, ...] = ("operator", "read-only")


@dataclass(frozen=True)
class Operator:
    """A person allowed into the console. ``role``: ``operator`` or ``read-only``."""

    name: str
    token: str
    role: Role = "operator"

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class Session:
    """A signed-in operator, as the session cookie carries it."""

    name: str
    role: Role
    csrf: str
    expires: float

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class LinkClaims:
    """What an approval link grants: one decision on one wait, until ``expires``."""

    instance_id: str
    ref: str
    expires: float
    nonce: str
    by: str  # who minted it


@dataclass(frozen=True)
class SignInLimit:
    """How many failed sign-ins the console takes: ``per_client`` in a row from one
    address, then one more every ``per_client_every`` seconds; and ``overall`` from
    all addresses together, then one more every ``overall_every`` seconds (so that many
    addresses cannot guess faster than that either)."""

    per_client: int = 10
    per_client_every: float = 10.0
    overall: int = 100
    overall_every: float = 1.0

    def __post_init__(self) -> None:
        if min(self.per_client, self.overall) < 1 or min(self.per_client_every,
                                                         self.overall_every) <= 0:
            raise ValueError("sign-in limits must be positive")


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at

    def refill(self, now: float, size: int, every: float) -> None:
        self.tokens = min(float(size), self.tokens + max(now - self.at, 0.0) / every)
        self.at = now

    def wait(self, every: float) -> float:
        """Seconds until one attempt is left (0: one is left now)."""
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * every


class SignInLimiter:
    """The token buckets of failed sign-ins (see `SignInLimit`).

    Args:
        limit: the sizes and refill rates.
        clock: seconds (monotonic); the engine's clock in the console.
        max_clients: buckets kept at most; past it, full ones are forgotten first
            (a full bucket is what a new client gets anyway), then the oldest.
    """

    def __init__(self, limit: SignInLimit, clock: Callable[[], float] = time.monotonic,
                 *, max_clients: int = 10_000) -> None:
        self.limit = limit
        self._clock = clock
        self._max_clients = max_clients
        self._clients: dict[str, _Bucket] = {}
        self._overall = _Bucket(float(limit.overall), clock())

    def retry_after(self, client: str) -> int:
        """Whole seconds ``client`` must wait before its next sign-in is checked (0:
        it may try now)."""
        now, limit = self._clock(), self.limit
        self._overall.refill(now, limit.overall, limit.overall_every)
        wait = self._overall.wait(limit.overall_every)
        bucket = self._clients.get(client)
        if bucket is not None:
            bucket.refill(now, limit.per_client, limit.per_client_every)
            wait = max(wait, bucket.wait(limit.per_client_every))
        return math.ceil(wait)

    def failed(self, client: str) -> None:
        """Count a failed sign-in of ``client``."""
        now, limit = self._clock(), self.limit
        bucket = self._clients.pop(client, None)  # re-inserted: the dict keeps recency
        if bucket is None:
            bucket = _Bucket(float(limit.per_client), now)
        bucket.refill(now, limit.per_client, limit.per_client_every)
        bucket.tokens -= 1
        self._clients[client] = bucket
        self._overall.refill(now, limit.overall, limit.overall_every)
        self._overall.tokens -= 1
        if len(self._clients) > self._max_clients:
            for name, other in list(self._clients.items()):
                other.refill(now, limit.per_client, limit.per_client_every)
                if other.tokens >= limit.per_client:
                    del self._clients[name]
            while len(self._clients) > self._max_clients:
                del self._clients[next(iter(self._clients))]


def parse_operators(specs: list[str]) -> list[Operator]:
    """Operators from ``NAME=TOKEN`` or ``NAME=TOKEN:read-only`` strings.

    Raises:
        ValueError: a malformed spec, a repeated name or token, or a token under 16
            characters.
    """
    operators: list[Operator] = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        token, _, role = rest.partition(":")
        role = role or "operator"
        if not sep or not name or not token:
            raise ValueError(f"operator {spec.split('=')[0]!r}: write NAME=TOKEN or "
                             "NAME=TOKEN:read-only")
        if role not in ROLES:
            raise ValueError(f"operator {name!r}: role {role!r} is not one of {list(ROLES)}")
        if len(token) < 16:
            raise ValueError(f"operator {name!r}: the token must be at least 16 characters "
                             "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')")
        operators.append(Operator(name, token, role))
    if len({o.name for o in operators}) != len(operators):
        raise ValueError("two operators have the same name")
    if len({o.token for o in operators}) != len(operators):
        raise ValueError("two operators have the same token")
    return operators


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks sessions and approval links with one secret (HMAC-SHA256).

    Each kind of token is signed under its own purpose, so a session cookie can never
    pass for a link or the other way round.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the console secret must be at least 32 bytes")
        self._secret = secret

    def _sign(self, purpose: str, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def _check(self, purpose: str, token: str) -> dict[str, Any] | None:
        body, _, mac = token.partition(".")
        if not body or not mac:
            return None
        want = hmac.new(self._secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(mac)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        return claims if isinstance(claims, dict) else None

    # -- sessions --------------------------------------------------------------------
    def new_session(self, operator: Operator, *, lifetime: float) -> tuple[Session, str]:
        session = Session(operator.name, operator.role, secrets.token_urlsafe(24),
                          time.time() + lifetime)
        return session, self._sign("session", {"n": session.name, "r": session.role,
                                               "c": session.csrf, "e": session.expires})

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None if it is missing, forged or expired."""
        claims = self._check("session", cookie or "")
        if claims is None:
            return None
        try:
            session = Session(str(claims["n"]), claims["r"], str(claims["c"]),
                              float(claims["e"]))
        except (KeyError, TypeError, ValueError):
            return None
        if session.role not in ROLES or session.expires < time.time():
            return None
        return session

    # -- approval links --------------------------------------------------------------
    def new_link(self, instance_id: str, ref: str, *, lifetime: float, by: str) -> str:
        return self._sign("approval-link", {"i": instance_id, "w": ref,
                                            "e": time.time() + lifetime,
                                            "n": secrets.token_urlsafe(12), "b": by})

    def link(self, token: str) -> LinkClaims | None:
        """The claims of a link with a valid signature (expired ones included: the
        caller says "expired", which is more use than "invalid"), else None."""
        claims = self._check("approval-link", token)
        if claims is None:
            return None
        try:
            return LinkClaims(str(claims["i"]), str(claims["w"]), float(claims["e"]),
                              str(claims["n"]), str(claims["b"]))
        except (KeyError, TypeError, ValueError):
            return None

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

What this is not: there is no password store, no rate limit on sign-in attempts (tokens
are long random strings), and no revocation of a session before it expires other than
changing the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "LinkClaims",
    "Operator",
    "Session",
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

"""Which failures cool an account down, and for how long (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from langchain_hailuo.errors import HailuoAuthError, HailuoQuotaError, HailuoRateLimitError

__all__ = ["Cooldown", "CooldownKind", "HealthSettings", "cooldown_for"]

CooldownKind = Literal["quota", "rate_limit", "auth"]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How long an account rests after a failure.

    Attributes:
        quota_cooldown: Seconds after a quota wall. The service does not say when credits
            return, so the account is tried again then (it rests again if still empty).
        rate_limit_cooldown: Seconds after HTTP 429 without ``Retry-After`` (else as it says).
    """

    quota_cooldown: float = 3600.0
    rate_limit_cooldown: float = 30.0


@dataclass(frozen=True, slots=True)
class Cooldown:
    """An account that must not start answers for a while.

    Attributes:
        kind: ``quota`` (out of credits), ``rate_limit`` (HTTP 429) or ``auth`` (token rejected).
        seconds: How long from when it was recorded (``None``: until logged in again).
        message: What happened (no secret).
        token: For ``auth``: the hash of the rejected token (a new login has another).
        until: When it ends, epoch seconds on this host's clock (set by its backend).
    """

    kind: CooldownKind
    seconds: float | None
    message: str
    token: str | None = None
    until: float | None = None

    def started(self, now: float) -> Cooldown:
        """This cool-down recorded at ``now`` (its ``until`` set from ``seconds``)."""
        return replace(self, until=None if self.seconds is None else now + self.seconds)

    def blocks(self, token: str | None, now: float) -> bool:
        """Whether it still keeps the account (with this token) from answering at ``now``."""
        if self.kind == "auth":
            return token is None or token == self.token
        return self.until is not None and self.until > now


def cooldown_for(
    error: BaseException, settings: HealthSettings, token: str | None
) -> Cooldown | None:
    """The rest ``error`` calls for (``None``: none); ``token``: the used token's hash."""
    if isinstance(error, HailuoQuotaError):
        return Cooldown("quota", settings.quota_cooldown, error.message)
    if isinstance(error, HailuoRateLimitError):
        wait = settings.rate_limit_cooldown if error.retry_after is None else error.retry_after
        return Cooldown("rate_limit", wait, error.message)
    if isinstance(error, HailuoAuthError):
        return Cooldown("auth", None, error.message, token=token)
    return None

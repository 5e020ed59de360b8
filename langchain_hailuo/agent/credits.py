"""An account's plan and remaining credits (protocol notes §7.3), read at most once a minute.

Two readouts, both signed like any call:

* ``POST /matrix/api/v1/commerce/get_membership_info`` (an axios call): after MiniMax's "op"
  migration the balance is the **string** ``op_credit_summary.total_remaining_amount`` and the
  older fields (``total_remains_credit``, ``opcredit_balance``,
  ``daily_login_gift_credit_remaining``) read 0, so it is read first and they are the
  fallback; ``plan_name`` / ``plan_type`` name the plan;
* ``GET {prefix}/credit/details``: each credit grant; the sum of ``details[].remaining_amount``
  (strings such as ``"800.00"``) is the cross-check (``details`` is absent when empty).

Never read on an answer's path: ``hailuo doctor``, ``hailuo status --check`` and
``hailuo pool status`` read them; the last reading of each account is kept for the process
(:func:`last_credits`), so a quota error can say how many credits were left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_hailuo.errors import HailuoError

if TYPE_CHECKING:
    from langchain_hailuo._http import HttpOptions
    from langchain_hailuo.agent.client import AgentClient, AgentSettings
    from langchain_hailuo.types import AuthResult

__all__ = [
    "CREDITS_MAX_AGE",
    "Credits",
    "last_credits",
    "parse_credit_details",
    "parse_membership",
    "read_credits",
    "with_credits_left",
]

CREDITS_MAX_AGE = 60.0
"""Seconds a reading is reused: an account's credits are read at most once a minute."""
_OLDER_FIELDS = ("total_remains_credit", "opcredit_balance", "daily_login_gift_credit_remaining")

_lock = threading.Lock()
_last: dict[str, Credits] = {}


@dataclass(frozen=True, slots=True)
class Credits:
    """One reading of an account's credits.

    Attributes:
        plan: The plan's name, when the service says.
        remaining: Credits left by the membership readout (``None``: not readable).
        details_total: The sum of the credit grants (``None``: not readable).
        read_at: Epoch seconds of the reading.
    """

    plan: str | None
    remaining: float | None
    details_total: float | None
    read_at: float

    @property
    def best(self) -> float | None:
        """The balance to show: the membership's, else the grants' sum."""
        return self.remaining if self.remaining is not None else self.details_total

    def describe(self) -> str:
        """One line, e.g. ``plan Free, 1000.00 credits left (grants: 1000.00)``."""
        plan = f"plan {self.plan}" if self.plan else "plan unknown"
        best = self.best
        left = f"{best:.2f} credits left" if best is not None else "credits unknown"
        check = ""
        if self.remaining is not None and self.details_total is not None:
            check = f" (grants: {self.details_total:.2f})"
        return f"{plan}, {left}{check}"

    def when(self) -> str:
        """The reading's time, ``HH:MM UTC``."""
        return time.strftime("%H:%M UTC", time.gmtime(self.read_at))


def _number(value: Any) -> float | None:
    """A balance (number or numeric string) as a float, else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


def _data_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``data`` object of an envelope, or the body itself."""
    data = body.get("data")
    return data if isinstance(data, Mapping) else body


def parse_membership(body: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The plan and the balance of a ``get_membership_info`` answer (§7.3)."""
    # ``(plan, remaining)``: ``op_credit_summary.total_remaining_amount`` first, then the first
    # older field that is not 0; either may be ``None``.
    data = _data_of(body)
    plan = data.get("plan_name") or data.get("plan_type")
    summary = data.get("op_credit_summary")
    remaining = (
        _number(summary.get("total_remaining_amount")) if isinstance(summary, Mapping) else None
    )
    if remaining is None:
        older = [_number(data.get(name)) for name in _OLDER_FIELDS]
        remaining = next((v for v in older if v), next((v for v in older if v is not None), None))
    return (str(plan) if plan not in (None, "") else None), remaining


def parse_credit_details(body: Mapping[str, Any]) -> float | None:
    """The sum of ``details[].remaining_amount`` of a ``credit/details`` answer."""
    # The sum (0 with no grant), or ``None`` when the answer is not of that shape.
    details = _data_of(body).get("details", [])
    if not isinstance(details, list):
        return None
    amounts = [_number(d.get("remaining_amount")) for d in details if isinstance(d, Mapping)]
    return sum(a for a in amounts if a is not None)


def with_credits_left(error: HailuoError, account: str) -> HailuoError:
    """Add to a quota error how many credits the account had when last read."""
    # ``error`` itself, its message completed when a reading exists.
    reading = last_credits(account)
    if reading is not None and reading.best is not None:
        error.message = (
            f"{error.message} The account had {reading.best:.2f} credits left when last "
            f"read ({reading.when()})."
        )
        error.args = (error.message,)
    return error


def last_credits(account: str) -> Credits | None:
    """The last reading of an account in this process (no network)."""
    # The reading, or ``None`` when none was made.
    with _lock:
        return _last.get(account)


async def read_credits(
    client: AgentClient,
    auth: AuthResult,
    *,
    settings: AgentSettings,
    options: HttpOptions | None = None,
    max_age: float = CREDITS_MAX_AGE,
) -> Credits:
    """Read an account's credits, or reuse a reading younger than ``max_age`` seconds."""
    # ``auth`` must carry its ``realUserID`` (bootstrap first). Either readout may fail; the other
    # still counts.
    account = auth.account_fingerprint
    cached = last_credits(account)
    if cached is not None and time.time() - cached.read_at < max_age:
        return cached
    plan: str | None = None
    remaining: float | None = None
    details: float | None = None
    failure: HailuoError | None = None
    try:
        body = await client.request_json(
            auth,
            "POST",
            settings.membership_path,
            what="membership request",
            payload={},
            settings=settings,
            options=options,
        )
        plan, remaining = parse_membership(body)
    except HailuoError as exc:
        failure = exc
    try:
        body = await client.get_prefixed(
            auth,
            settings.credit_details_path,
            what="credit details request",
            settings=settings,
            options=options,
        )
        details = parse_credit_details(body)
    except HailuoError:
        if failure is not None:
            raise failure from None
    reading = Credits(plan, remaining, details, time.time())
    with _lock:
        _last[account] = reading
    return reading

"""Login pages for browser-login tests: one per protocol, storing what the real sites store.

Both pages (``GET /`` on ``Emulator.url`` and on ``Emulator.agent_url``) have:

- ``<body>`` that starts with class ``no-js`` and loses it once the script runs;
- ``<form id="login-form">`` with ``<input id="username" name="username">`` and
  ``<button id="login" type="submit">``; an empty username logs in the default account;
- ``<p id="status">``: text ``logged-out``, then ``logged-in`` or ``unknown-user``.

On a successful login the v4 page stores, in localStorage, ``_token`` (the account's JWT),
``UNIQUE_USER_ID`` (``uuid``) and ``USER_HARD_WARE_INFO`` (``device_id``). The Agent page
stores ``_token`` and ``UNIQUE_USER_ID`` in localStorage and ``tab_device_id`` (8 digits) in
sessionStorage; it also sets the cookies ``__cf_bm`` (on page load) and ``_cfuvid`` (on login).
"""

from __future__ import annotations

import secrets
from typing import Final, Literal

from aiohttp import web

from langchain_hailuo.emulator.core import EmulatorAccount, EmulatorState

__all__ = ["LOGIN_API_PATH", "LoginPages"]

LOGIN_API_PATH: Final = "/__emulator/login"
"""Where the page's script posts ``{"username": ...}``."""

Flavor = Literal["v4", "agent"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body class="no-js">
<h1>{title}</h1>
<form id="login-form">
  <input id="username" name="username" placeholder="username" autocomplete="username">
  <button id="login" type="submit">Log in</button>
</form>
<p id="status">logged-out</p>
<script>
document.body.classList.remove("no-js");
const statusLine = document.getElementById("status");
if (localStorage.getItem("_token")) {{ statusLine.textContent = "logged-in"; }}
document.getElementById("login-form").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const username = document.getElementById("username").value;
  const answer = await fetch("{login_path}", {{
    method: "POST",
    headers: {{"content-type": "application/json"}},
    body: JSON.stringify({{username: username}}),
  }});
  if (!answer.ok) {{ statusLine.textContent = "unknown-user"; return; }}
  const stored = await answer.json();
  for (const [key, value] of Object.entries(stored.localStorage)) {{
    localStorage.setItem(key, value);
  }}
  for (const [key, value] of Object.entries(stored.sessionStorage)) {{
    sessionStorage.setItem(key, value);
  }}
  statusLine.textContent = "logged-in";
}});
</script>
</body></html>
"""


def _cookie_value() -> str:
    """A made-up, Cloudflare-looking cookie value."""
    return f"{secrets.token_urlsafe(32)}-{secrets.randbelow(10**10)}-1.0.1.1"


class LoginPages:
    """The login page and its login call, for one origin."""

    def __init__(self, state: EmulatorState, flavor: Flavor) -> None:
        """The login page of ``flavor`` (``v4`` or ``agent``) over the shared state's accounts."""
        self.state = state
        self.flavor = flavor

    def add_to(self, app: web.Application) -> None:
        """Register ``GET /`` and the login call on an application."""
        app.router.add_get("/", self.page)
        app.router.add_post(LOGIN_API_PATH, self.login)

    async def page(self, request: web.Request) -> web.Response:
        """Serve the login page."""
        self.state.record_of(request).endpoint = "login_page"
        title = "Hailuo AI (emulator)" if self.flavor == "v4" else "MiniMax Agent (emulator)"
        response = web.Response(
            text=_PAGE.format(title=title, login_path=LOGIN_API_PATH), content_type="text/html"
        )
        if self.flavor == "agent":
            response.set_cookie("__cf_bm", _cookie_value(), path="/", httponly=True, samesite="Lax")
        return response

    async def login(self, request: web.Request) -> web.Response:
        """Log the typed user in: answer what the page stores (404 for an unknown name)."""
        record = self.state.record_of(request)
        record.endpoint = "login"
        data = await request.json()
        username = str(data.get("username") or "").strip() if isinstance(data, dict) else ""
        record.body = {"username": username}
        account = self.state.accounts.get(username) if username else self.state.default_account
        if account is None:
            return web.json_response({"error": "unknown user"}, status=404)
        record.account = account.name
        response = web.json_response(self._stored(account))
        if self.flavor == "agent":
            response.set_cookie("_cfuvid", _cookie_value(), path="/", httponly=True, samesite="Lax")
        return response

    def _stored(self, account: EmulatorAccount) -> dict[str, dict[str, str]]:
        """What the page puts into localStorage and sessionStorage."""
        if self.flavor == "v4":
            local = {
                "_token": account.token,
                "UNIQUE_USER_ID": account.uuid,
                "USER_HARD_WARE_INFO": account.device_id,
            }
            return {"localStorage": local, "sessionStorage": {}}
        local = {"_token": account.token, "UNIQUE_USER_ID": account.uuid}
        return {"localStorage": local, "sessionStorage": {"tab_device_id": account.tab_device_id}}

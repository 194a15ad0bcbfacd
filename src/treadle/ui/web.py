"""Shared plumbing of the UI pages: templates, the session user, CSRF and safe responses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from treadle.core.ages import format_age
from treadle.ui import session as sess
from treadle.ui.session import SessionUser, Signer

if TYPE_CHECKING:
    from treadle.app import Treadle

HERE = Path(__file__).parent
STATIC_PREFIX = "/ui/static"

# Scripts only from our own origin: even if some value escaped escaping, it could not run.
# Styles allow inline because CodeMirror and uPlot position elements with style attributes.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    """JSON for humans. Returned as plain text: autoescaping makes ``<script>`` inert."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    secs = (datetime.now(UTC) - value).total_seconds()
    future = secs < 0
    secs = abs(secs)
    if secs < 60:
        text = f"{int(secs)}s"
    elif secs < 3600:
        text = f"{int(secs // 60)}m"
    elif secs < 86400:
        text = f"{int(secs // 3600)}h {int(secs % 3600 // 60)}m"
    else:
        text = f"{int(secs // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def _utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _ms(value: float | None) -> str:
    return "—" if value is None else _duration(value / 1000)


CORE_NAV: tuple[tuple[str, str], ...] = (
    ("/", "Dashboard"), ("/jobs", "Jobs"), ("/queues", "Queues"), ("/schedules", "Schedules"),
    ("/metrics", "Metrics"),
)


def make_templates(extra_dirs: Sequence[Path] = ()) -> Jinja2Templates:
    """The UI's templates, then each plug-in's folder (``extra_dirs``) in order."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([HERE / "templates", *extra_dirs]),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty=_pretty, ago=_ago, utc=_utc, iso=_iso, duration=_duration, ms=_ms,
                       age=format_age)
    env.globals["static"] = lambda path: f"{STATIC_PREFIX}/{path}"
    return Jinja2Templates(env=env)


class UIContext:
    """What every page handler needs; one per mounted UI."""

    def __init__(
        self,
        treadle: Treadle,
        signer: Signer,
        templates: Jinja2Templates,
        *,
        nav: Sequence[tuple[str, str]] = CORE_NAV,
    ) -> None:
        self.treadle = treadle
        self.signer = signer
        self.templates = templates
        self.nav = tuple(nav)  # (href, label) of the main menu: core pages, then plug-ins'
        # Plug-ins' dashboard panels: (ctx, user) -> (template, context)
        self.panels: list[Callable[[UIContext, Any], tuple[str, Mapping[str, Any]]]] = []

    @property
    def store(self) -> Any:
        return self.treadle.store

    def user(self, request: Request) -> SessionUser | None:
        return sess.read_session(self.signer, request)

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/login?" + urlencode({"next": target})
        if request.headers.get("hx-request"):
            # An HTMX poll after the session expired: send the whole page to the login form.
            return Response(status_code=204, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        user: SessionUser | None,
        status_code: int = 200,
    ) -> HTMLResponse:
        response = HTMLResponse("")
        flash = sess.pop_flash(self.signer, request, response) if user else None
        full = {
            "request": request,
            "user": user,
            "csrf": self.signer.csrf_for(user.sid) if user else "",
            "flash": flash,
            "path": request.url.path,
            "nav": self.nav,
            **context,
        }
        html = self.templates.get_template(template).render(full)
        out = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        for key, value in response.headers.items():
            if key == "set-cookie":
                out.headers.append(key, value)
        return out

    async def posted(self, request: Request) -> tuple[SessionUser, FormData] | Response:
        """A logged-in user and their CSRF-checked form, or the response to send instead
        (the login redirect, or a 403 page)."""
        user = self.user(request)
        if user is None:
            return self.login_redirect(request)
        form = await self.checked_form(request, user)
        if isinstance(form, Response):
            return form
        return user, form

    async def checked_form(self, request: Request, user: SessionUser) -> FormData | Response:
        """The POSTed form if it passes the CSRF and origin checks, else a 403 page."""
        form = await request.form()
        token = form.get(sess.CSRF_FIELD)
        ok = sess.same_origin(request) and sess.check_csrf(
            self.signer, request, user, token if isinstance(token, str) else None
        )
        if not ok:
            return self.error(request, user, 403, "This form has expired or did not come from "
                              "this site. Reload the page and try again.")
        return form

    def error(
        self, request: Request, user: SessionUser | None, status: int, message: str
    ) -> HTMLResponse:
        return self.render(request, "error.html", {"status": status, "message": message},
                           user=user, status_code=status)

    def redirect(
        self, request: Request, location: str, *, flash: tuple[str, str] | None = None
    ) -> Response:
        response = RedirectResponse(location, status_code=303)
        if flash:
            sess.set_flash(self.signer, request, response, *flash)
        return response


def safe_next(value: str | None) -> str:
    """Only same-site paths after login: ``next=//evil.example`` must not redirect off-site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return quote(value, safe="/?=&%-_.~+,")


MAX_ID = 2**63 - 1  # ids are bigints: a larger number names no job


def as_id(text: str) -> int | None:
    """A job id from a query string or form, or None. ``str.isdigit`` alone also accepts
    digits ``int`` refuses (``²``, ``①``), and a number beyond a bigint is no id."""
    if text.isascii() and text.isdigit() and len(text) <= 19:
        value = int(text)
        return value if 1 <= value <= MAX_ID else None
    return None


def is_id(job_id: int) -> bool:
    """Whether a job id from a path could name a job (else: the not-found page)."""
    return 1 <= job_id <= MAX_ID


def form_str(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def query_str(request: Request, name: str) -> str:
    return request.query_params.get(name, "").strip()

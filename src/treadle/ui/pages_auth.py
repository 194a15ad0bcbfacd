"""``/login`` (an API key in a form field named ``api_key``) and ``/logout``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from treadle.core.job import DEFAULT_TENANT
from treadle.ui import session as sess
from treadle.ui.auth import authenticate, can_read
from treadle.ui.web import UIContext, form_str, safe_next


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request) -> Response:
        return _login_form(request, ctx, error=None, status=200)

    @router.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        form = await request.form()
        token = form.get(sess.CSRF_FIELD)
        if not sess.same_origin(request) or not sess.check_login_csrf(
            request, token if isinstance(token, str) else None
        ):
            return _login_form(request, ctx, error="The login form expired; please try again.",
                               status=403)
        config = getattr(request.app.state, "api_config", None)
        if form_str(form, "local") and local_admin_allowed(request):
            user = sess.new_session(DEFAULT_TENANT, frozenset({"admin", "read", "submit"}),
                                    "open-loopback")
        else:
            raw = form_str(form, "api_key")
            principal = authenticate(ctx.treadle, raw, config)
            if principal is None:
                # One message for every failure: no hint whether a key exists or was revoked.
                return _login_form(request, ctx, error="That API key was not accepted.",
                                   status=401)
            if not can_read(principal.scopes):
                return _login_form(request, ctx, error="That API key lacks the read scope.",
                                   status=403)
            user = sess.new_session(principal.tenant, frozenset(principal.scopes), raw)
        response = ctx.redirect(request, safe_next(form_str(form, "next")))
        sess.write_session(ctx.signer, request, response, user)
        response.delete_cookie(sess.LOGIN_CSRF_COOKIE, path="/login")
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        user = ctx.user(request)
        if user is not None:
            checked = await ctx.checked_form(request, user)
            if isinstance(checked, Response):
                return checked
        response = ctx.redirect(request, "/login")
        sess.clear_session(response)
        return response


def _login_form(request: Request, ctx: UIContext, *, error: str | None, status: int) -> Response:
    holder = HTMLResponse("")
    token = sess.login_csrf(request, holder)
    response = ctx.render(
        request, "login.html",
        {"login_csrf": token, "error": error, "local_admin": local_admin_allowed(request),
         "next": safe_next(request.query_params.get("next"))},
        user=None, status_code=status,
    )
    for value in holder.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", value)
    return response


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def local_admin_allowed(request: Request) -> bool:
    """Mirror the API's ``open_loopback`` (the embedded ``treadle up`` default) in the UI.

    Offered as an explicit button, never a silent login. The Host header must be a loopback
    name too, so a DNS-rebinding page that reaches 127.0.0.1 under its own name is refused.
    """
    config = getattr(request.app.state, "api_config", None)
    if not getattr(config, "open_loopback", False):
        return False
    client = request.client.host if request.client else ""
    host = (request.url.hostname or "").strip("[]")
    return client in _LOOPBACK and host in _LOOPBACK

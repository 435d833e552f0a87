"""The web dashboard of ``pipecat-roark serve``: calls, one call on a timeline, agents.

Server-rendered pages (Jinja2) with a little plain JavaScript and CSS shipped in
``static/``; every page has a JSON twin that the page itself reads. See docs/dashboard.md.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from . import login, routes, waterfall
from .errorpages import error_page, install_error_pages
from .routes import LoginRequired, PageNotFound, media_origin
from .templating import STATIC_DIR

__all__ = ["STATIC_PATH", "install"]

STATIC_PATH = "/assets"


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, its static files and its page-level error handlers."""
    app.include_router(login.api_router)
    app.include_router(login.router)
    app.include_router(routes.router)
    app.include_router(waterfall.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-assets")

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.target, status_code=303)

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, exc: PageNotFound) -> Response:
        return error_page(
            404,
            viewer=exc.viewer,
            media_origin=media_origin(request.app.state.server),
            message=f"There is no such {exc.what} in project {exc.viewer.project_name}.",
        )

    install_error_pages(app)

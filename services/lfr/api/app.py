"""Composition root of `lfr api`: the FastAPI app, its routers and the uvicorn server.

Routers live beside the domain they serve (watchlists, deployments, alerts, search) and share one
ApiContext built in the lifespan, so the app object stays a thin assembly of parts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from lfr import __version__
from lfr.api import errors
from lfr.api.context import ApiContext
from lfr.api.limits import ApiGuard
from lfr.core.config import Settings
from lfr.core.service import ServiceContext

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    from lfr.api import (
        routes_alerts,
        routes_audit,
        routes_cameras,
        routes_console,
        routes_deployments,
        routes_enrolment,
        routes_ops,
        routes_public,
        routes_redact,
        routes_reports,
        routes_search,
        routes_watchlists,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ctx = await ApiContext.start(settings)
        try:
            yield
        finally:
            await app.state.ctx.close()

    app = FastAPI(
        title="LFR API",
        version=__version__,
        description="Watchlists, deployments, alerts and adjudication for live facial recognition. "
        "Every route but /api/v1/public needs a bearer token; roles: watchlist-admin, "
        "authorising-officer, operator, auditor, operations.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    errors.install(app)

    # Outermost last: CORS (closed unless origins are configured) wraps the guard, which wraps the routes.
    app.add_middleware(ApiGuard, api=settings.api)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )

    for module in (
        routes_watchlists,
        routes_deployments,
        routes_audit,
        routes_alerts,
        routes_console,
        routes_search,
        routes_cameras,
        routes_redact,
        routes_enrolment,
        routes_reports,
        routes_public,
        routes_ops,
    ):
        app.include_router(module.router)
    return app


def server_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    """How `lfr api` serves ``app``: no access log (it would record ``?access_token=`` query strings), and
    X-Forwarded-For believed only from ``api.forwarded_allow_ips``, so limits see each client."""
    return uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.api.forwarded_allow_ips,
    )


async def main(ctx: ServiceContext) -> None:
    s = ctx.settings
    app = create_app(s)
    server = uvicorn.Server(server_config(s, app))
    ctx.on_stop(lambda: setattr(server, "should_exit", True))
    ctx.health.add_check("api", lambda: server.started)

    async def deps_ready() -> bool:
        api_ctx: ApiContext | None = getattr(app.state, "ctx", None)
        return api_ctx is not None and bool(await api_ctx.redis.ping())

    ctx.health.add_check("redis", deps_ready)
    log.info("api listening on %s:%d", s.api.host, s.api.port)
    await server.serve()

"""The Data sync page: a FastAPI app the Airflow API server mounts (see ``plugins/datasync_ui.py``).

Every route needs a signed-in Airflow user, checked by Airflow's own auth manager with the same
token the Airflow UI uses (its ``_token`` cookie, or an ``Authorization: Bearer`` header for
scripts). HTML pages and their JSON twins (``/api/...``) render the same dicts from
:mod:`datasync.monitor.views`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from datasync.monitor import URL_PREFIX, views
from datasync.monitor.charts import runs_chart

PAGE_ROWS = 200
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))
_bearer = HTTPBearer(auto_error=False)


class NotSignedIn(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def signed_in_user(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Any:
    """The Airflow user behind the request, checked by Airflow's auth manager; else 401."""
    from airflow.api_fastapi.core_api.security import get_user

    try:
        return await get_user(request, None, bearer)
    except HTTPException as exc:  # no token (401), expired (401) or forged (403): not signed in, for us
        raise NotSignedIn(str(exc.detail)) from None


# ---- formatting for the templates -------------------------------------------------------------------------
def _parse(value: Any) -> dt.datetime | None:
    if isinstance(value, str) and len(value) > 10:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, dt.datetime) else None


def when(value: Any) -> str:
    moment = _parse(value)
    if moment is None:
        return "" if value is None else str(value)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h {minutes % 60}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def relative(value: Any) -> str:
    moment = _parse(value)
    if moment is None:
        return ""
    delta = (moment - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def breakable(value: Any) -> Markup:
    """A dotted sync name that may wrap after its dots, not in the middle of a word."""
    return Markup("<wbr>").join(escape(part) for part in re.split(r"(?<=\.)", str(value)))


def number(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


TEMPLATES.filters.update(when=when, duration=duration, relative=relative, number=number, breakable=breakable)


# ---- the app ----------------------------------------------------------------------------------------------
def _roots(request: Request) -> tuple[str, str]:
    """(this app's root, Airflow's root) as URL paths, whatever base path Airflow is served under."""
    base = request.scope.get("root_path", "").rstrip("/")
    airflow = base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else ""
    return base, airflow


def _page(request: Request, template: str, title: str, tab: str, **data: Any) -> HTMLResponse:
    base, airflow = _roots(request)
    html = TEMPLATES.get_template(template).render(base=base, airflow=airflow, title=title, tab=tab, chart=runs_chart,
                                                   **data)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)  # Decimal, UUID: as their text


def _json(data: Any) -> Response:
    return Response(json.dumps(data, default=_plain), media_type="application/json", headers={"Cache-Control": "no-store"})


def create_app() -> FastAPI:
    app = FastAPI(title="Data sync", description="Every sync's status, freshness, history, rejects and errors "
                  "across the datasync targets (JSON twins of the Data sync pages under /api).",
                  dependencies=[Depends(signed_in_user)], docs_url=None, redoc_url=None)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn):
        base, airflow = _roots(request)
        if "/api/" in request.url.path:
            return JSONResponse({"detail": f"Not signed in to Airflow: {exc.reason}"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        login = f"{airflow}/auth/login"
        try:
            from airflow.api_fastapi.app import get_auth_manager

            login = airflow + get_auth_manager().get_url_login(next_url=str(request.url.path))
        except Exception:  # the link is a convenience; the 401 is what matters
            pass
        html = TEMPLATES.get_template("signin.html").render(login=login, reason=exc.reason, base=base, title="Sign in")
        return HTMLResponse(html, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(views.NotFound)
    async def not_found(request: Request, exc: views.NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    # -- overview --
    @app.get("/api/overview")
    def overview_json(request: Request, pipeline: str | None = None, status: str | None = None, dag: str | None = None):
        return _json(views.overview(_roots(request)[1], pipeline=pipeline, status=status, dag_id=dag).as_dict())

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, pipeline: str | None = None, status: str | None = None, dag: str | None = None,
                      all: bool = False):
        everything = views.overview(_roots(request)[1], dag_id=dag)
        shown = [r for r in everything.rows if (not pipeline or r.pipeline == pipeline)
                 and (not status or r.status == status or (status == "problems" and r.status in views.PROBLEMS))]
        # Problems always; past PAGE_ROWS the healthy rest waits for "show all" (a page of
        # thousands of green rows helps nobody at 3 a.m. and takes long to draw).
        limit = len(shown) if all else max(PAGE_ROWS, sum(r.status in views.PROBLEMS for r in shown))
        return _page(request, "overview.html", "Data sync", "overview", overview=everything, rows=shown[:limit],
                     hidden=len(shown) - limit, reject_days=views.REJECT_WINDOW_DAYS, pipelines=sorted({r.pipeline for r in everything.rows}),
                     statuses=list(everything.counts()), pipeline=pipeline or "", status=status or "", dag=dag or "")

    # -- one sync --
    @app.get("/api/sync/{target}/{sync_name}")
    def sync_json(request: Request, target: str, sync_name: str, limit: int = views.HISTORY_LIMIT):
        return _json(views.sync_detail(target, sync_name, _roots(request)[1], limit=_limit(limit)))

    @app.get("/sync/{target}/{sync_name}", response_class=HTMLResponse)
    def sync_page(request: Request, target: str, sync_name: str, limit: int = views.HISTORY_LIMIT):
        detail = views.sync_detail(target, sync_name, _roots(request)[1], limit=_limit(limit))
        return _page(request, "sync.html", sync_name, "overview", d=detail)

    # -- registry --
    @app.get("/api/registry")
    def registry_json(request: Request, status: str | None = None):
        return _json(views.registry_view(status, _roots(request)[1]))

    @app.get("/registry", response_class=HTMLResponse)
    def registry_page(request: Request, status: str | None = None):
        return _page(request, "registry.html", "Registry sources", "registry", d=views.registry_view(status, _roots(request)[1]),
                     status=status or "")

    @app.get("/api/registry/{source_id}")
    def registry_source_json(request: Request, source_id: str, limit: int = views.HISTORY_LIMIT):
        return _json(views.registry_detail(source_id, _roots(request)[1], limit=_limit(limit)))

    @app.get("/registry/{source_id}", response_class=HTMLResponse)
    def registry_source_page(request: Request, source_id: str, limit: int = views.HISTORY_LIMIT):
        detail = views.registry_detail(source_id, _roots(request)[1], limit=_limit(limit))
        return _page(request, "registry_source.html", f"Registry source {source_id}", "registry", d=detail)

    # -- KPI and Tekmetric --
    @app.get("/api/kpi")
    def kpi_json():
        return _json(views.kpi_view())

    @app.get("/kpi", response_class=HTMLResponse)
    def kpi_page(request: Request):
        return _page(request, "kpi.html", "KPI days", "kpi", d=views.kpi_view())

    @app.get("/api/tekmetric")
    def tekmetric_json(request: Request):
        return _json(views.tekmetric_view(_roots(request)[1]))

    @app.get("/tekmetric", response_class=HTMLResponse)
    def tekmetric_page(request: Request):
        return _page(request, "tekmetric.html", "Tekmetric", "tekmetric", d=views.tekmetric_view(_roots(request)[1]))

    # -- what one task instance synced (the task instance tab in Airflow) --
    @app.get("/api/ti/{dag_id}/{run_id}/{task_id}/{map_index}")
    def ti_json(request: Request, dag_id: str, run_id: str, task_id: str, map_index: str):
        return _json(views.task_instance_view(dag_id, run_id, task_id, _map_index(map_index), _roots(request)[1]))

    @app.get("/ti/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
    def ti_page(request: Request, dag_id: str, run_id: str, task_id: str, map_index: str):
        d = views.task_instance_view(dag_id, run_id, task_id, _map_index(map_index), _roots(request)[1])
        return _page(request, "ti.html", f"{dag_id} / {task_id}", "overview", d=d)

    return app


def _map_index(text: str) -> int:
    # Airflow's UI leaves {MAP_INDEX} as it is for a task that is not mapped
    return int(text) if text.lstrip("-").isdigit() else -1


def _limit(limit: int) -> int:
    return max(1, min(int(limit), 500))


app = create_app()

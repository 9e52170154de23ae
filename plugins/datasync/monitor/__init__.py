"""The "Data sync" page: every sync's status, freshness, history, rejects and errors across the
target databases, inside the Airflow UI (mounted by ``plugins/datasync_ui.py``).

:mod:`.targets` reads every target in parallel through its Airflow connection, :mod:`.facts` holds
the SQL, :mod:`.views` turns rows into what each view shows, :mod:`.app` serves HTML and JSON to
signed-in Airflow users, :mod:`.safety` redacts every stored text before it is shown.
"""

from __future__ import annotations

URL_PREFIX = "/datasync"


class PageApp:
    """The page's ASGI app, built on its first request (see :mod:`.app`).

    Airflow loads plugins in every task process too (for listeners); building the FastAPI app
    there cost each task ~0.18 CPU-s for an app that only the API server serves.
    """

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from datasync.monitor.app import app

            self._app = app
        await self._app(scope, receive, send)

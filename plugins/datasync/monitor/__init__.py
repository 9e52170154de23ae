"""The "Data sync" page: every sync's status, freshness, history, rejects and errors across the
target databases, inside the Airflow UI (mounted by ``plugins/datasync_ui.py``).

:mod:`.targets` reads every target in parallel through its Airflow connection, :mod:`.facts` holds
the SQL, :mod:`.views` turns rows into what each view shows, :mod:`.app` serves HTML and JSON to
signed-in Airflow users, :mod:`.safety` redacts every stored text before it is shown.
"""

"""PTMMM: the daily KPI pipeline of the PTMMM logistics platform.

TiDB (``tidb_ops``) holds the operational tables and the daily KPI tables; Supabase
(``supabase_ptmmm``) holds auth, organisations and a row-level-secured mirror of the KPIs.
:mod:`datasync.ptmmm.kpi` computes one WIB day, from the single SQL source in
``include/sql/kpi/``. Formulas and runbook: ``docs/etl/daily_kpi_etl.md``.
"""

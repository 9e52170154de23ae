"""datasync: the engine and pipelines behind this repository's Airflow DAGs.

Airflow puts ``plugins/`` on ``sys.path``, so DAG files import ``datasync.*`` directly.
"""

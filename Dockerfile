# The datasync DAG package on the official Airflow image.
#
#   docker build -t ptmmm-datasync-airflow:3.3.2 .      (docker compose builds it for you)
#
# Two targets: `production` (the default, the last stage) holds the package and nothing else;
# `dev` adds devtools/ (the Tekmetric emulator, the demo data) for compose's emulator and demo-data
# services. Test doubles never reach the production image.
#
# The Airflow version here must equal the apache-airflow pin in requirements.txt
# (tests/foundation/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11 AS base

# constraints.txt is this repository's own resolution, not Airflow's published constraints, so a pin
# can differ from what the image ships; mysqlclient then has no wheel and pip compiles it. These are
# the build packages mysqlclient documents (the image already has the MySQL/MariaDB client runtime).
# Build with `--build-arg BUILD_DEPS=` to leave them out when no compilation is needed.
ARG BUILD_DEPS="build-essential pkg-config default-libmysqlclient-dev"
USER root
RUN if [ -n "${BUILD_DEPS}" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ${BUILD_DEPS} \
        && apt-get autoremove -yqq --purge \
        && apt-get clean \
        && rm -rf /var/lib/apt/lists/*; \
    fi
USER airflow

# Python dependencies, as the airflow user (the image's documented way). Naming apache-airflow at the
# image's version makes pip fail rather than silently up- or downgrade Airflow itself. Runtime
# requirements only: the test tools (requirements-dev.txt) stay out of the image.
COPY --chown=airflow:root requirements.txt constraints.txt /opt/airflow/datasync-deps/
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/datasync-deps/requirements.txt \
        -c /opt/airflow/datasync-deps/constraints.txt

# The package itself. Compose mounts these same folders over the copies for live editing; a deployment
# that runs the image as it is gets them baked in. `python -m datasync ...` works in any container.
ENV PYTHONPATH=/opt/airflow/plugins \
    DATASYNC_INCLUDE_DIR=/opt/airflow/include
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root include/sql /opt/airflow/include/sql

# Development tools: the emulator and the demo loaders (python -m devtools.tekmetric.emulator).
FROM base AS dev
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow
COPY --chown=airflow:root devtools /opt/airflow/devtools
COPY --chown=airflow:root include/demo /opt/airflow/include/demo

# The production image: the package only. Last, so a plain `docker build .` builds it.
FROM base AS production

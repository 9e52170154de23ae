"""The compose deployment, checked statically (no Docker engine needed).

docker-compose.yaml is read with PyYAML (merge keys resolved) and its ``${VAR}`` references are
interpolated the way compose does, with the values of .env.example. The Dockerfile, .env.example
and the scripts in docker/ are read as text; the connection URIs are parsed by Airflow itself.
``docker compose config`` runs too when the compose plugin is installed.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from harness import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"

def _connections() -> dict[str, str]:
    """conn id -> Airflow connection type: the databases from the one list (migrate.TARGETS), plus
    the connections that are not databases (docs/architecture.md, "Connections")."""
    from datasync.migrate import TARGETS

    databases = {t.conn_id: "postgres" if t.family == "postgres" else "mysql" for t in TARGETS.values()}
    return {**databases, "tekmetric_api": "http", "google_sheets": "google_cloud_platform"}


DESIGN_CONNECTIONS = _connections()
OPTIONAL_CONNECTIONS = {"google_sheets"}  # tasks that need it skip when it is not configured

AIRFLOW_COMPONENTS = {  # service -> the airflow command it runs
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
AIRFLOW_SERVICES = set(AIRFLOW_COMPONENTS) | {"airflow-init"}
REQUIRED_SERVICES = AIRFLOW_SERVICES | {"redis", "postgres", "tidb", "warehouse-db", "tekmetric-emulator"}
# One-shot or on-demand services, and TiDB (its image has no tool to probe with; airflow-init waits for it).
NO_HEALTHCHECK = {"airflow-init", "airflow-cli", "demo-data", "tidb"}

POOLS = {"tekmetric_api": 4, "registry_sources": 16, "db_sync": 8}
SHARED_SECRETS = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY")

# --- compose variable interpolation --------------------------------------------------------------
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>" + _NAME + r")(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>" + _NAME + r"))")


def compose_variables(text: str) -> set[str]:
    """Every variable a compose file interpolates (``$$`` is an escaped dollar, not a variable)."""
    return {m["braced"] or m["plain"] for m in _VAR.finditer(text) if not m["escaped"]}


def interpolate(value: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["plain"]
        have = env.get(name)
        op = m["op"] or ""
        # With a colon, an empty value counts as unset (compose semantics).
        missing = not have if op.startswith(":") else have is None
        if op.endswith("-") and missing:
            return m["arg"]
        if op.endswith("?") and missing:
            raise KeyError(f"{name} is required: {m['arg']}")
        if op.endswith("+"):
            return "" if missing else m["arg"]
        return have or ""

    return _VAR.sub(sub, value)


def env_file(path: Path) -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if re.match(_NAME + "=", ln))
    return {k: v for k, v in pairs}


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose) -> dict:
    return compose["x-airflow-common"]


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    """.env.example, with the values a user must fill in filled with test values."""
    env = env_file(ENV_EXAMPLE)
    return {k: v or f"test-{k.lower().replace('_', '-')}" for k, v in env.items()}


def host_path(service: dict, container_path: str) -> Path:
    """The repository file a service sees at ``container_path`` through its bind mounts."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./") and (container_path == target or container_path.startswith(target + "/")):
            return REPO / source[2:] / container_path[len(target):].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repository")


# --- services ------------------------------------------------------------------------------------
def test_required_services_exist(services):
    assert REQUIRED_SERVICES <= set(services), f"missing services: {sorted(REQUIRED_SERVICES - set(services))}"


@pytest.mark.parametrize("name", sorted(AIRFLOW_COMPONENTS))
def test_airflow_components_run_their_command(services, name):
    assert services[name]["command"] == AIRFLOW_COMPONENTS[name]


def test_every_airflow_service_shares_image_build_and_secrets(services, common):
    env = common["environment"]
    assert common["build"]["context"] == "." and common["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    for secret in SHARED_SECRETS:
        # A reference to .env, required, with no fallback value: never a literal or a default key.
        assert re.fullmatch(r"\$\{" + _NAME + r":\?[^}]*\}", env[secret]), f"{secret} must be ${{VAR:?...}}, got {env[secret]!r}"
    airflow_like = {n for n, s in services.items() if s.get("build") == common["build"]}
    assert AIRFLOW_SERVICES <= airflow_like, f"not built from the Dockerfile: {sorted(AIRFLOW_SERVICES - airflow_like)}"
    for name in sorted(AIRFLOW_SERVICES):
        service = services[name]
        assert service["image"] == common["image"], name
        for key in (*SHARED_SECRETS, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
            assert service["environment"].get(key) == env[key], f"{name}: {key} differs from x-airflow-common"
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_celery_and_execution_api_wiring(services, common, example_env):
    env = {k: interpolate(str(v), example_env) for k, v in common["environment"].items()}
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"):
        assert urlsplit(env[key]).hostname in services, f"{key} points at no service"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert any(str(p).endswith(":8080") for p in services["airflow-apiserver"]["ports"])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(("SimpleAuthManager", "FabAuthManager"))


def test_package_folders_are_mounted(common):
    mounts = {v.split(":")[1]: v.split(":")[0] for v in common["volumes"]}
    for folder in ("dags", "plugins", "include", "logs", "config"):
        assert f"/opt/airflow/{folder}" in mounts, f"/opt/airflow/{folder} is not mounted"
    for folder in ("dags", "plugins", "include"):
        assert mounts[f"/opt/airflow/{folder}"] == f"./{folder}"
    assert common["environment"]["DATASYNC_INCLUDE_DIR"] == "/opt/airflow/include"


def test_long_running_services_have_healthchecks(services):
    missing = sorted(n for n, s in services.items() if n not in NO_HEALTHCHECK and "healthcheck" not in s)
    assert not missing, f"services without a healthcheck: {missing}"


# --- connections ---------------------------------------------------------------------------------
def test_design_connections_cover_the_migration_targets():
    from datasync.migrate import TARGETS

    assert {t.conn_id for t in TARGETS.values()} <= set(DESIGN_CONNECTIONS)


@pytest.mark.parametrize("conn_id", sorted(set(DESIGN_CONNECTIONS) - OPTIONAL_CONNECTIONS))
def test_connection_is_set_and_points_at_a_service(conn_id, common, services, example_env):
    from airflow.models.connection import Connection

    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    assert key in common["environment"], f"{key} is not set in x-airflow-common"
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"].get(key) == common["environment"][key], f"{name} does not get {key}"
    conn = Connection(conn_id=conn_id, uri=interpolate(common["environment"][key], example_env))
    assert conn.conn_type == DESIGN_CONNECTIONS[conn_id]
    assert conn.host in services, f"{conn_id}: host {conn.host!r} is not a compose service"
    if conn.conn_type == "postgres":
        assert conn.host == "warehouse-db"
        created = set()
        for sql in (REPO / "docker" / "warehouse-db").glob("*.sql"):
            created |= set(re.findall(r"(?im)^\s*CREATE DATABASE\s+\"?(\w+)", sql.read_text()))
        assert conn.schema in created, f"{conn_id}: database {conn.schema!r} is not created by docker/warehouse-db/"
    if conn_id == "tidb_ops":
        assert conn.host == "tidb" and conn.port == 4000 and conn.schema == "ptmmm_ops"
    if conn_id == "tekmetric_api":
        # The emulator speaks plain http; without schema "http" the hook would use https for this host.
        assert (conn.port, conn.schema) == (8090, "http")
        emulator = [interpolate(str(a), example_env) for a in services["tekmetric-emulator"]["command"]]
        accepts = {flag: value for flag, value in zip(emulator, emulator[1:]) if flag.startswith("--")}
        assert (conn.login, conn.password) == (accepts.get("--client-id"), accepts.get("--client-secret"))


def test_tidb_and_emulator_services(services, common, example_env):
    assert services["tidb"]["image"].startswith("pingcap/tidb:")
    assert any(str(p).endswith(":4000") for p in services["tidb"]["ports"])
    emulator = services["tekmetric-emulator"]
    assert emulator["build"] == {**common["build"], "target": "dev"} and emulator["image"] != common["image"]
    assert emulator["command"][:7] == ["python", "-m", "devtools.tekmetric.emulator", "--port", "8090", "--host", "0.0.0.0"]
    api = urlsplit(interpolate(common["environment"]["AIRFLOW_CONN_TEKMETRIC_API"], example_env))
    assert (api.hostname, api.port) == ("tekmetric-emulator", 8090)


def test_tidb_database_script_reads_the_connection():
    spec = importlib.util.spec_from_file_location("ensure_tidb_database", REPO / "docker" / "ensure_tidb_database.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args, database = module.target("mysql://root@tidb:4000/ptmmm_ops")
    assert database == "ptmmm_ops" and args["host"] == "tidb" and args["port"] == 4000 and args["user"] == "root"
    with pytest.raises(SystemExit):
        module.target("mysql://root@tidb:4000/bad`name")


# --- airflow-init --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def init_script(services) -> str:
    init = services["airflow-init"]
    command = init["command"] if isinstance(init["command"], list) else init["command"].split()
    scripts = [c for c in command if c.endswith(".sh")]
    assert scripts, f"airflow-init runs no script from docker/: {command}"
    path = host_path(init, scripts[0])
    assert path.is_file(), path
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    return path.read_text()


def test_init_creates_the_pools(init_script):
    created = {name: int(slots) for name, slots in re.findall(r"(?m)^\s*airflow pools set (\w+) (\d+) ", init_script)}
    assert created == POOLS


def test_every_pool_named_in_the_code_is_created(init_script):
    created = set(re.findall(r"airflow pools set (\w+) ", init_script))
    used = set()
    for path in [*(REPO / "dags").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        used |= set(re.findall(r"\bpool\s*=\s*[\"'](\w+)[\"']", path.read_text()))
    assert used - {"default_pool"} <= created, f"pools used but never created: {sorted(used - created - {'default_pool'})}"


def test_init_migrates_and_sets_up_databases(init_script, services):
    assert "airflow db migrate" in init_script
    assert "ensure_tidb_database.py" in init_script
    assert services["airflow-init"]["environment"]["AIRFLOW_ADMIN_PASSWORD"].startswith("${AIRFLOW_ADMIN_PASSWORD:?")


# --- Dockerfile ----------------------------------------------------------------------------------
def _pin(path: Path, package: str) -> str:
    match = re.search(rf"(?im)^{re.escape(package)}==([\w.]+)\s*$", path.read_text())
    assert match, f"{path.name} does not pin {package}"
    return match.group(1)


def test_dockerfile_pins_the_required_airflow_and_uses_constraints():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"(?im)^FROM\s+(\S+)", text)
    external = [f for f in froms if "/" in f]  # the other stages build on this one
    assert len(external) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(3\.\d+)", external[0])
    assert match, f"FROM must be apache/airflow:<version>-python<x.y>, got {froms[0]}"
    version, python = match.groups()
    assert version == "3.3.2"
    assert version == _pin(REPO / "requirements.txt", "apache-airflow") == _pin(REPO / "constraints.txt", "apache-airflow")
    assert python == "3.11"

    instructions = re.sub(r"\\\n", " ", text)
    installs = [ln for ln in instructions.splitlines() if re.match(r"\s*RUN\s.*\bpip install\b", ln)]
    assert any(re.search(r"-r\s+\S*requirements\.txt", ln) and re.search(r"-c\s+\S*constraints\.txt", ln) for ln in installs), installs
    # pip runs as the airflow user, after any root section.
    users = re.findall(r"(?im)^USER\s+(\S+)", text[: text.index("pip install")])
    assert users and users[-1] == "airflow", users
    copied = " ".join(re.findall(r"(?im)^COPY\s+(.+)$", text))
    for part in ("requirements.txt", "constraints.txt", "dags /opt/airflow/dags", "plugins /opt/airflow/plugins", "include/sql /opt/airflow/include/sql"):
        assert part in copied, f"Dockerfile does not COPY {part}"


# --- .env.example and docker/make-env.sh --------------------------------------------------------
def test_env_example_lists_every_compose_variable():
    used = compose_variables(COMPOSE_FILE.read_text())
    listed = set(env_file(ENV_EXAMPLE))
    assert not used - listed, f"used in docker-compose.yaml but missing from .env.example: {sorted(used - listed)}"
    assert not listed - used, f"listed in .env.example but unused: {sorted(listed - used)}"


def test_env_example_is_commented_and_holds_no_secrets():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"({_NAME})=(.*)$", line)
        if not m:
            continue
        j = i - 1
        while j >= 0 and re.match(_NAME + "=", lines[j]):
            j -= 1
        assert j >= 0 and lines[j].startswith("#"), f".env.example: {m[1]} has no comment above it"
        name, value = m.groups()
        if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|KEY", name):
            assert value in ("", "change-me") or value.startswith("demo-"), f".env.example: {name} looks like a real secret"


def test_compose_interpolates_with_the_example_values(example_env):
    text = COMPOSE_FILE.read_text()
    rendered = yaml.safe_load(interpolate(text, example_env))
    assert rendered["services"]["airflow-apiserver"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == example_env["AIRFLOW_JWT_SECRET"]
    with pytest.raises(KeyError, match="AIRFLOW_FERNET_KEY"):
        interpolate(text, {**example_env, "AIRFLOW_FERNET_KEY": ""})


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("python3") is None, reason="needs bash and python3")
def test_make_env_writes_fresh_secrets_once(tmp_path):
    (tmp_path / "docker").mkdir()
    shutil.copy(REPO / "docker" / "make-env.sh", tmp_path / "docker" / "make-env.sh")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    run = subprocess.run(["bash", str(tmp_path / "docker" / "make-env.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    env = env_file(tmp_path / ".env")
    assert set(env) == set(env_file(ENV_EXAMPLE))
    assert len(base64.urlsafe_b64decode(env["AIRFLOW_FERNET_KEY"])) == 32
    assert len(env["AIRFLOW_JWT_SECRET"]) >= 32
    assert all(v for v in env.values()) and "change-me" not in env.values()
    interpolate(COMPOSE_FILE.read_text(), env)  # every required variable is set
    before = (tmp_path / ".env").read_text()
    again = subprocess.run(["bash", str(tmp_path / "docker" / "make-env.sh")], capture_output=True, text=True)
    assert again.returncode == 0 and (tmp_path / ".env").read_text() == before


# --- docker compose itself -----------------------------------------------------------------------
def test_docker_compose_config_accepts_the_file(tmp_path, example_env):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH: docker compose config not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        said = (probe.stderr or probe.stdout).strip().splitlines()
        pytest.skip(f"docker compose config not run: the compose plugin is not installed ({said[0] if said else 'no output'})")
    env = tmp_path / "test.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in example_env.items()))
    run = subprocess.run(
        [docker, "compose", "--project-directory", str(REPO), "--env-file", str(env), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr


# --- issue: a real deployment -------------------------------------------------------------------
def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[=<>~! ]", line, 1)[0].lower().replace("_", "-"))
    return names


def test_ui_is_published_on_loopback_by_default(services, example_env):
    for port in services["airflow-apiserver"]["ports"]:
        assert interpolate(str(port), {k: v for k, v in example_env.items() if k != "AIRFLOW_API_BIND"}).startswith("127.0.0.1:")
        assert interpolate(str(port), example_env).startswith("127.0.0.1:")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert interpolate(str(port), example_env).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_demo_profile_seeds_the_compose_databases(services, common):
    demo = services["demo-data"]
    assert demo["profiles"] == ["demo"]
    assert demo["command"][:3] == ["python", "/opt/airflow/scripts/airflow_stack.py", "seed-demo"]
    assert host_path(demo, "/opt/airflow/scripts/airflow_stack.py").exists()
    assert demo["environment"] == common["environment"]  # the same connections as the workers
    assert demo["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    data_dir = demo["command"][demo["command"].index("--data-dir") + 1]
    assert f"demo-data:{data_dir}" in demo["volumes"]
    # The workers read the files the demo writes, and the registry policy lets them.
    assert f"demo-data:{data_dir}:ro" in common["volumes"]
    assert data_dir in common["environment"]["AIRFLOW_VAR_DATASYNC_REGISTRY_POLICY"]


def test_worker_loss_settings_are_chosen_and_documented(common):
    timeout = int(common["environment"]["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    assert 30 <= timeout < 300
    runbook = (REPO / "docs" / "runbook.md").read_text()
    assert "## A worker died" in runbook and f"{timeout} s" in runbook


def test_the_image_installs_runtime_requirements_only():
    instructions = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in instructions if "requirements-dev" in ln]
    runtime, dev = _requirement_names(REPO / "requirements.txt"), _requirement_names(REPO / "requirements-dev.txt")
    assert "pytest" in dev and not {n for n in runtime if n.startswith("pytest")}
    assert {"apache-airflow-providers-celery", "redis"} <= runtime


def test_constraints_pin_every_requirement_and_a_working_celery():
    pins = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
    wanted = _requirement_names(REPO / "requirements.txt") | _requirement_names(REPO / "requirements-dev.txt")
    assert wanted <= set(pins), f"not pinned: {sorted(wanted - set(pins))}"
    assert pins["celery"].startswith("5.6."), "celery 5.7.0 breaks apache-airflow-providers-celery 3.26.0 at import"


def test_pip_check_is_clean_and_the_celery_executor_imports():
    import sys

    check = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    imported = subprocess.run([sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor"],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr[-2000:]


def _stages(text: str) -> dict[str, str]:
    """Dockerfile stage name -> its instructions (comments and line continuations folded away)."""
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    parts = re.split(r"(?im)^FROM\s+\S+\s+AS\s+(\w+)\s*$", text)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_production_image_holds_no_test_double_and_compose_runs_them_from_dev(services, common):
    stages = _stages(DOCKERFILE.read_text())
    assert list(stages)[-1] == "production", "a plain `docker build .` must build the production target"
    assert common["build"]["target"] == "production"
    shipped = stages["base"] + stages["production"]
    assert "devtools" not in shipped and "include/demo" not in shipped and not re.search(r"COPY\S*\s+(\S+\s+)*include\s", shipped)
    assert "COPY --chown=airflow:root devtools /opt/airflow/devtools" in stages["dev"]
    assert re.search(r"FROM base AS dev", DOCKERFILE.read_text())
    for name in ("tekmetric-emulator", "demo-data"):
        assert services[name]["build"]["target"] == "dev", name
        assert host_path(services[name], "/opt/airflow/devtools/tekmetric/emulator.py").is_file(), name
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"]["target"] == "production", name
    # The shipped package imports nothing from devtools (the demo command imports it lazily, guarded).
    for path in (REPO / "plugins").rglob("*.py"):
        text = path.read_text()
        if path.name == "cli.py":
            text = text.replace("from devtools.demo import run_demo", "")
        assert not re.search(r"(?m)^\s*(from|import)\s+devtools\b", text), path
        assert not re.search(r"emulator|standin|demo", path.stem), f"{path} looks like a test double or demo code"


# --- one list of databases ----------------------------------------------------------------------
def test_every_list_of_databases_agrees_with_the_migration_targets():
    """The databases are declared once (migrate.TARGETS); the demo and the test cluster must know
    each of them. Adding a target without them fails here, naming the place (docs/adding-a-pipeline.md)."""
    import importlib.util

    from datasync.migrate import TARGETS
    from devtools.demo import DEMO_DATABASES

    spec = importlib.util.spec_from_file_location("cluster_module", REPO / "tests" / "cluster" / "cluster.py")
    wanted = {t.conn_id: ("postgres" if t.family == "postgres" else "mysql") for t in TARGETS.values()}
    assert {c: kind for c, (kind, _) in DEMO_DATABASES.items()} == wanted, "devtools/demo/__init__.py DEMO_DATABASES"
    cluster_text = spec.loader.get_source("cluster_module")
    listed = dict(re.findall(r'^\s+"(\w+)": "(postgres|mysql)",', cluster_text.split("CONNECTIONS = {", 1)[1].split("}", 1)[0], re.M))
    assert listed == wanted, "tests/cluster/cluster.py CONNECTIONS"
    assert {c: t for c, t in DESIGN_CONNECTIONS.items() if t in ("postgres", "mysql")} == wanted

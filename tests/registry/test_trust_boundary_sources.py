"""Registry rows are untrusted: what a row can make the worker run, read or log (artisan, file and
database sources, and the registry policy itself), tried as an attacker would.

Each case asserts the refusal names the source and the policy rule, that nothing ran and nothing
was read, and (for the runner cases, through ``run_source`` on a real registry database) that no
secret reached history, the registry row, ``sync_log``, ``sync_rejects``, the log or the output.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sys
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from openpyxl import Workbook

from datasync.registry.connectors import SourceConfigError, SourceError, open_source, validate_config
from datasync.registry.connectors import artisan
from datasync.registry.policy import Limits, PolicyInvalid, PolicyRefused, RegistryPolicy
from policies import allow_command, allow_files, command_spec, policy, policy_variable, reader_login
from runner_fixtures import Registry, migrated_registry, registry_bound

# Canaries: secrets the worker holds. None of them may show up anywhere a row's outcome lands.
VAR_SECRET = "tb-var-secret-9d1e47"
CONN_PASSWORD = "tb-conn-pw-51c7aa"
WORKER_CONN = f"postgresql://svc:{CONN_PASSWORD}@db.internal:5432/prod"
ENV_DUMP = "import json, os\nprint(json.dumps([{'k': k, 'v': v} for k, v in sorted(os.environ.items())]))\n"


@pytest.fixture(autouse=True)
def worker_secrets(monkeypatch):
    """What a worker's environment holds: Airflow connections and variables with secrets."""
    monkeypatch.setenv("AIRFLOW_CONN_TB_WORKER_DB", WORKER_CONN)
    monkeypatch.setenv("AIRFLOW_VAR_TB_TOKEN", VAR_SECRET)


def marker_program(tmp_path: Path, name: str = "touch.py") -> tuple[list[str], Path]:
    """A program that leaves a marker file when it runs (so a test can prove it did not)."""
    marker = tmp_path / f"{name}.ran"
    path = tmp_path / name
    path.write_text(f"open({str(marker)!r}, 'w').write('ran')\nprint('[]')\n")
    return [sys.executable, str(path)], marker


def read(source_type, config, allowed, batch_size=1000):
    return [r for b in open_source(source_type, config, policy=allowed, batch_size=batch_size) for r in b]


def refused(rule: str, source: str):
    """pytest.raises for a policy refusal naming the rule and the source."""
    return pytest.raises(PolicyRefused, match=rf"{re.escape(source)}.*refused by registry policy rule '{re.escape(rule)}'")


# ==== artisan: the row names a command; the platform says what it runs ======================================
@pytest.mark.parametrize("command", [
    ["/bin/sh", "-c", "touch {marker}"],
    "/bin/sh -c 'touch {marker}'",
    "./script.py",
    "../../../../bin/echo",
    "php artisan data:sync",  # the old shape: a command line
    "sync; touch {marker}",
])
def test_artisan_row_cannot_spell_out_a_program(tmp_path, command):
    argv, marker = marker_program(tmp_path)
    spelled = [a.format(marker=marker) for a in command] if isinstance(command, list) else command.format(marker=marker)
    with pytest.raises(SourceConfigError, match=r"artisan source: 'command' names a command the platform allows.*"
                                                r"to migrate, the platform team adds the program"):
        read("artisan", {"command": spelled}, allow_command(argv))
    assert not marker.exists()


def test_artisan_unknown_command_name_is_refused(tmp_path):
    argv, marker = marker_program(tmp_path)
    with refused("artisan_commands", "artisan source 'drop_everything'") as err:
        read("artisan", {"command": "drop_everything"}, allow_command(argv, name="sync"))
    assert "allowed: ['sync']" in str(err.value)
    assert not marker.exists()


def test_artisan_default_policy_allows_no_command(tmp_path):
    with refused("artisan_commands", "artisan source 'sync'") as err:
        read("artisan", {"command": "sync"}, RegistryPolicy())
    assert "allowed: none" in str(err.value)


@pytest.mark.parametrize("parameter", [
    "--source=../../etc",            # outside the pattern's alphabet
    "--source=a --x",                # a second option smuggled in one argument
    "--source=a\n--type=evil",       # a newline: the pattern must match all of it, not a first line
    "--source=a\n",                  # a trailing newline (a $-anchored pattern would let it through)
    "--type=production",             # an option the command does not declare
    "--source=machine1;id",
])
def test_artisan_parameter_must_fullmatch_a_declared_pattern(tmp_path, parameter):
    argv, marker = marker_program(tmp_path)
    with refused("artisan_commands", "artisan source 'sync'") as err:
        read("artisan", {"command": "sync", "parameters": [parameter]},
             allow_command(argv, parameters=("--source=[a-z0-9_]+",)))
    assert "matches none of its declared patterns" in str(err.value)
    assert not marker.exists()


def test_artisan_parameter_with_nul_byte_is_refused(tmp_path):
    argv, marker = marker_program(tmp_path)
    with pytest.raises(SourceConfigError, match="artisan source: a parameter holds a NUL byte"):
        read("artisan", {"command": "sync", "parameters": ["--source=a\x00b"]}, allow_command(argv, parameters=(".*",)))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "PYTHONSTARTUP", "AIRFLOW_CONN_REGISTRY_DB"])
def test_artisan_env_names_are_limited_to_the_declared_ones(tmp_path, name):
    argv, marker = marker_program(tmp_path)
    with refused("artisan_commands", "artisan source 'sync'") as err:
        read("artisan", {"command": "sync", "env": {name: "{{ var.tb_token }}"}}, allow_command(argv, env=("API_TOKEN",)))
    assert f"may not be given environment variable '{name}'" in str(err.value)
    assert VAR_SECRET not in str(err.value)
    assert not marker.exists()


def test_artisan_row_cannot_choose_the_working_directory(tmp_path):
    argv, marker = marker_program(tmp_path)
    with pytest.raises(SourceConfigError, match="a registry row cannot choose the working directory"):
        read("artisan", {"command": "sync", "working_directory": "/"}, allow_command(argv))
    assert not marker.exists()


def test_allowed_command_sees_no_worker_secrets_and_reading_the_workers_environ_is_not_a_row_choice(tmp_path):
    """The issue's demo: a command read /proc/$PPID/environ and wrote AIRFLOW_CONN_REGISTRY_DB
    into a target table. An allowed command gets only INHERITED_ENV plus declared names; and a
    row cannot pick a program that reads the worker's environ in the first place."""
    dump = tmp_path / "env.py"
    dump.write_text(ENV_DUMP)
    seen = {r["k"]: r["v"] for r in read("artisan", {"command": "env"},
                                        allow_command([sys.executable, str(dump)], name="env"))}
    assert set(seen) <= set(artisan.INHERITED_ENV)
    assert not any(k.startswith("AIRFLOW") for k in seen)
    assert VAR_SECRET not in json.dumps(seen) and CONN_PASSWORD not in json.dumps(seen)
    reader = [sys.executable, "-c", "import os; print(open(f'/proc/{os.getppid()}/environ').read())"]
    with pytest.raises(SourceConfigError, match="'command' names a command the platform allows"):
        read("artisan", {"command": reader}, allow_command([sys.executable, str(dump)], name="env"))


def test_artisan_output_past_the_limit_is_refused_and_the_group_killed(tmp_path):
    loud = tmp_path / "loud.py"
    loud.write_text("import sys, time\nsys.stdout.write('[' + '0,' * 2_000_000)\nsys.stdout.flush()\ntime.sleep(30)\n")
    started = time.monotonic()
    with refused("limits.command_output_bytes", "artisan source 'loud'") as err:
        read("artisan", {"command": "loud", "timeout": 20},
             allow_command([sys.executable, str(loud)], name="loud", limits={"command_output_bytes": 2**20}))
    assert time.monotonic() - started < 5  # stopped when it passed the limit, not at the timeout
    assert "over the limit of 1.0 MiB (default 100.0 MiB" in str(err.value)


# ==== files: inside an allowed root, regular, not too big ====================================================
@pytest.fixture
def root(tmp_path):
    r = tmp_path / "share"
    r.mkdir()
    (r / "ok.json").write_text('[{"id": 1}]')
    return r


@pytest.mark.parametrize("kind", ["json", "csv", "excel"])
@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ", "{airflow_cfg}", "{root}/../../../../etc/passwd"])
def test_files_outside_the_roots_are_refused_unread(root, kind, target, airflow_db):
    from airflow.configuration import AIRFLOW_CONFIG

    path = target.format(root=root, airflow_cfg=AIRFLOW_CONFIG)
    with refused("file_roots", f"{kind} source {path}") as err:
        read(kind, {"file_path": path}, allow_files(root))
    assert "outside the allowed file roots" in str(err.value)
    assert "root:" not in str(err.value) and "fernet_key" not in str(err.value)  # no content in the message


def test_a_symlink_inside_the_root_pointing_out_is_refused(root):
    (root / "passwd.csv").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    with refused("file_roots", "csv source") as err:
        read("csv", {"file_path": str(root / "passwd.csv"), "delimiter": ":", "has_header": False,
                     "columns": list("abcdefg")}, allow_files(root))
    assert "(really /etc/passwd)" in str(err.value)
    with refused("file_roots", "csv source"):
        read("csv", {"file_path": str(root / "etc" / "passwd")}, allow_files(root))


def test_a_symlink_loop_is_refused(root):
    (root / "a.json").symlink_to(root / "b.json")
    (root / "b.json").symlink_to(root / "a.json")
    with pytest.raises(SourceError, match=r"json source .*a\.json: (refused by registry policy rule 'file_roots'|"
                                          r"cannot open the file)"):
        read("json", {"file_path": str(root / "a.json")}, allow_files(root))


def test_a_symlink_within_the_root_is_followed(root):
    (root / "link.json").symlink_to(root / "ok.json")
    assert read("json", {"file_path": str(root / "link.json")}, allow_files(root)) == [{"id": 1}]


def test_a_sibling_directory_sharing_the_roots_prefix_is_outside(root):
    sibling = root.parent / (root.name + "2")
    sibling.mkdir()
    (sibling / "x.json").write_text("[]")
    with refused("file_roots", "json source"):
        read("json", {"file_path": str(sibling / "x.json")}, allow_files(root))


def test_relative_paths_and_nul_bytes_are_refused_before_anything(root):
    for path in ("ok.json", "share/../ok.json", f"{root}/ok.json\x00.png"):
        with pytest.raises(SourceConfigError, match="json source: file_path must be an absolute path"):
            validate_config("json", {"file_path": path})


def test_a_directory_is_refused(root):
    with pytest.raises(SourceError, match=rf"json source {root}: is a directory, not a file"):
        read("json", {"file_path": str(root)}, allow_files(root))


def test_a_fifo_is_refused_without_waiting_for_a_writer(root):
    fifo = root / "feed.csv"
    os.mkfifo(fifo)
    with _deadline(5):  # a blocking open would hang here
        with refused("file_roots", f"csv source {fifo}") as err:
            read("csv", {"file_path": str(fifo)}, allow_files(root))
    assert "only regular files are read" in str(err.value)


def test_no_policy_means_no_file(root):
    with refused("file_roots", "json source") as err:
        read("json", {"file_path": str(root / "ok.json")}, RegistryPolicy())
    assert "allowed file roots (none)" in str(err.value)


def test_file_size_limit_names_source_limit_and_default(root):
    big = root / "big.json"
    big.write_text(json.dumps([{"id": i} for i in range(100_000)]))
    with refused("limits.file_bytes", f"json source {big}") as err:
        read("json", {"file_path": str(big)}, allow_files(root, limits={"file_bytes": 2**20}))
    size = f"{big.stat().st_size / 2**20:.1f} MiB"
    assert f"the file is {size}, over the limit of 1.0 MiB (default 100.0 MiB" in str(err.value)


# ---- xlsx: what openpyxl would unpack, checked before it sees the file -----------------------------------------
SST = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SST_HEAD = b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
STRINGS = [b"Code", b"Name", b"A1", b"Press"]
SHEET = (b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
         b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
         b'<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row></sheetData></worksheet>')


def _write_xlsx(path: Path, *, strings_part: str = "xl/sharedStrings.xml", padding: int = 0, level: int = 6) -> Path:
    """A workbook whose cells are shared strings (as Excel writes them), in ``strings_part``
    (found through [Content_Types].xml, as openpyxl finds it), padded with ``padding`` bytes of
    further shared strings."""
    wb = Workbook()
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    parts["xl/worksheets/sheet1.xml"] = SHEET
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", f'<Override PartName="/{strings_part}" ContentType="{SST}" /></Types>'.encode())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        with z.open(strings_part, "w", force_zip64=True) as f:
            f.write(SST_HEAD + b"".join(b"<si><t>%s</t></si>" % s for s in STRINGS))
            item = b"<si><t>x</t></si>"
            chunk = item * (2**20 // len(item))
            for _ in range(padding // len(chunk)):
                f.write(chunk)
            f.write(item * (padding % len(chunk) // len(item)))
            f.write(b"</sst>")
    return path


@pytest.fixture(scope="module")
def shared_strings_bomb(tmp_path_factory) -> Path:
    """The issue's workbook: under 1 MB on disk, 400 MB of shared strings (openpyxl took 605 MB)."""
    return _write_xlsx(tmp_path_factory.mktemp("xlsx") / "plan.xlsx", padding=400 * 2**20)


def test_huge_shared_strings_are_refused_quickly_with_little_memory(shared_strings_bomb):
    assert shared_strings_bomb.stat().st_size < 2**20
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with refused("limits.xlsx_shared_strings_bytes", f"excel source {shared_strings_bomb}") as err:
            read("excel", {"file_path": str(shared_strings_bomb)}, allow_files(shared_strings_bomb.parent))
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < 1.0 and peak < 5 * 2**20, (took, peak)
    assert "part xl/sharedStrings.xml (read whole, not streamed) is 400.0 MiB, over the limit of 20.0 MiB " \
           "(default 20.0 MiB" in str(err.value)


def test_the_same_workbook_with_some_padding_in_its_shared_strings_reads(tmp_path):
    path = _write_xlsx(tmp_path / "plan.xlsx", padding=2**19)
    assert read("excel", {"file_path": str(path)}, allow_files(tmp_path)) == [{"Code": "A1", "Name": "Press"}]


@pytest.mark.parametrize("part", ["xl/worksheets/sheet9.xml", "xl/media/strings.bin"])
def test_shared_strings_under_another_name_are_still_limited(tmp_path, part):
    path = _write_xlsx(tmp_path / "renamed.xlsx", strings_part=part, padding=2**19)
    # openpyxl does read the renamed part as the shared strings: a check by file name would miss it
    assert read("excel", {"file_path": str(path)}, allow_files(tmp_path)) == [{"Code": "A1", "Name": "Press"}]
    with refused("limits.xlsx_shared_strings_bytes", "excel source") as err:
        read("excel", {"file_path": str(path)}, allow_files(tmp_path, limits={"xlsx_shared_strings_bytes": 2**18}))
    assert f"part {part} (read whole" in str(err.value)


def test_zip_bomb_total_is_refused(tmp_path):
    path = _write_xlsx(tmp_path / "bomb.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for i in range(4):  # 4 x 8 MiB of zeros: a few kB on disk
            with z.open(f"xl/media/image{i}.bin", "w") as f:
                for _ in range(8):
                    f.write(bytes(2**20))
    assert path.stat().st_size < 2**17
    with refused("limits.xlsx_uncompressed_bytes", f"excel source {path}") as err:
        read("excel", {"file_path": str(path)}, allow_files(tmp_path, limits={"xlsx_uncompressed_bytes": 16 * 2**20}))
    assert "its uncompressed content is 32.0 MiB, over the limit of 16.0 MiB (default 200.0 MiB" in str(err.value)


# ==== database sources ==========================================================================================
@pytest.fixture(scope="module")
def plant(database_factory):
    db = database_factory("postgres", "tbplant")
    db.query("CREATE TABLE machines (id INT PRIMARY KEY, name TEXT)")
    db.query("INSERT INTO machines VALUES (1, 'M1')")
    drop = reader_login(db, "tb_plant_reader")
    # the same database through the admin login, with a password in the URI (trust ignores it)
    os.environ["AIRFLOW_CONN_TB_PLANT_SUPER"] = db.uri.replace("postgres@", f"postgres:{CONN_PASSWORD}@", 1)
    yield db
    drop()
    os.environ.pop("AIRFLOW_CONN_TB_PLANT_SUPER", None)


READ_PASSWD = "SELECT pg_sleep(3) AS slept, pg_read_file('/etc/passwd') AS content"


def test_database_connection_not_in_the_policy_is_refused_before_connecting(plant):
    with refused("database_connections", "database source tb_plant_reader") as err:
        open_source("database", {"conn_id": "tb_plant_reader", "table": "machines"}, policy=policy())
    assert "is not open to registry sources" in str(err.value)


def test_superuser_login_is_refused_before_the_query_runs(plant):
    allowed = policy(database_connections=["tb_plant_super"])
    started = time.monotonic()
    with refused("database_connections", "database source tb_plant_super") as err:
        read("database", {"conn_id": "tb_plant_super", "query": READ_PASSWD}, allowed)
    assert time.monotonic() - started < 2  # pg_sleep(3) never ran
    assert "superuser role 'postgres'" in str(err.value) and "root:" not in str(err.value)
    assert CONN_PASSWORD not in str(err.value)


def test_reading_server_files_fails_for_the_read_only_login(plant):
    allowed = policy(database_connections=["tb_plant_reader"])
    with pytest.raises(SourceError, match=r"database source tb_plant_reader \(query\): .*permission denied for function "
                                          r"pg_read_file"):
        read("database", {"conn_id": "tb_plant_reader", "query": "SELECT pg_read_file('/etc/passwd') AS content"}, allowed)
    assert read("database", {"conn_id": "tb_plant_reader", "table": "machines"}, allowed) == [{"id": 1, "name": "M1"}]


@pytest.mark.parametrize("grant", ["GRANT pg_read_server_files TO \"{user}\"", "GRANT postgres TO \"{user}\""])
def test_a_login_that_can_become_powerful_is_refused(database_factory, grant):
    db = database_factory("postgres", "tbpower")
    db.query("CREATE TABLE t (id INT)")
    drop = reader_login(db, "tb_power", grants=grant)
    try:
        with refused("database_connections", "database source tb_power") as err:
            read("database", {"conn_id": "tb_power", "table": "t"}, policy(database_connections=["tb_power"]))
    finally:
        drop()
    assert ("member of 'pg_read_server_files'" in str(err.value)) or ("superuser role 'postgres'" in str(err.value))


def test_mariadb_file_privilege_and_root_are_refused_and_a_reader_cannot_load_files(database_factory):
    db = database_factory("mysql", "tbmy")
    db.query("CREATE TABLE t (id INT)")
    db.bind("tb_my_root")
    with refused("database_connections", "database source tb_my_root") as err:
        read("database", {"conn_id": "tb_my_root", "query": "SELECT LOAD_FILE('/etc/passwd') AS c"},
             policy(database_connections=["tb_my_root"]))
    assert "ALL PRIVILEGES" in str(err.value)
    drop = reader_login(db, "tb_my_file", grants="GRANT FILE ON *.* TO '{user}'@'%'")
    try:
        with refused("database_connections", "database source tb_my_file") as err:
            read("database", {"conn_id": "tb_my_file", "table": "t"}, policy(database_connections=["tb_my_file"]))
        assert "FILE for" in str(err.value)
    finally:
        drop()
    drop = reader_login(db, "tb_my_reader")
    try:
        rows = read("database", {"conn_id": "tb_my_reader", "query": "SELECT LOAD_FILE('/etc/passwd') AS c"},
                    policy(database_connections=["tb_my_reader"]))
    finally:
        drop()
    assert rows == [{"c": None}]  # without FILE the server reads nothing


@pytest.mark.parametrize("query", ["COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'", "DO $$ BEGIN PERFORM 1; END $$",
                                   "SET ROLE postgres", "SELECT 1; SELECT 2"])
def test_only_a_single_select_is_a_query(query):
    with pytest.raises(SourceConfigError, match="'query' must be a single SELECT statement"):
        validate_config("database", {"conn_id": "x", "query": query})


def test_gsheet_row_cannot_send_the_google_token_to_its_own_endpoint():
    config = {"spreadsheet_id": "s", "range": "A1:B", "api_endpoint": "https://collector.attacker.example/"}
    with refused("api_origins", "gsheet source s"):
        open_source("gsheet", config, policy=policy())


# ==== the policy variable ======================================================================================
@pytest.mark.parametrize("raw, message", [
    ("{not json", "is not JSON"),
    ("[]", "must be a JSON object"),
    ('{"file_root": ["/srv"]}', r"unknown key\(s\) \['file_root'\]"),
    ('{"file_roots": ["relative/dir"]}', "must be an absolute path"),
    ('{"artisan_commands": {"x": {"argv": ["php", "artisan"]}}}', "program is an absolute path"),
    ('{"artisan_commands": {"x": {"argv": ["/usr/bin/php"], "parameters": ["(unclosed"]}}}', "bad parameter pattern"),
    ('{"limits": {"file_bytes": -1}}', "positive whole number"),
])
def test_a_malformed_policy_is_invalid_not_permissive(raw, message):
    with pytest.raises(PolicyInvalid, match=message):
        RegistryPolicy.from_json(raw)


def test_missing_policy_denies_everything():
    with policy_variable(None):
        loaded = RegistryPolicy.load()
    assert loaded == RegistryPolicy() and not loaded.file_roots and not loaded.artisan_commands
    assert loaded.limits == Limits()


# ==== through the runner: history, registry, sync_log, sync_rejects, logs =======================================
@pytest.fixture(scope="module")
def hostile(database_factory, tmp_path_factory):
    """A registry of hostile rows on real Postgres and a policy that allows one directory and one command."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "ok.json").write_text('[{"id": 1}]')
    argv, marker = marker_program(d)
    db = migrated_registry(database_factory, "tbrun")
    # a superuser login the platform listed by mistake, with a password in its URI (trust ignores it)
    os.environ["AIRFLOW_CONN_TB_HOSTILE_SUPER"] = db.uri.replace("postgres@", f"postgres:{CONN_PASSWORD}@", 1)
    allowed = {"file_roots": [str(d)], "database_connections": ["tb_hostile_super"],
               "artisan_commands": {"sync": command_spec(argv, parameters=("--source=[a-z]+",), env=("API_TOKEN",))}}
    reg = Registry(db)
    mapping = [{"target_table": "t_hostile", "key_columns": ["id"], "columns": [{"column": "id", "source": "id"}]}]

    def add(sid, kind, config, target=None):
        reg.add(sid, kind, [config], [{**mapping[0], "target_table": target or f"t_{sid}"}])

    add("shell", "artisan", {"command": ["/bin/sh", "-c", f"touch {marker}"]})
    add("preload", "artisan", {"command": "sync", "env": {"LD_PRELOAD": "{{ var.tb_token }}"}})
    add("inject", "artisan", {"command": "sync", "parameters": ["--source=a\n--eval=1"]})
    add("environ", "json", {"file_path": "/proc/self/environ"})
    add("passwd", "csv", {"file_path": "/etc/passwd"})
    add("dotdot", "json", {"file_path": f"{d}/../../../../etc/passwd"})
    add("superuser", "database", {"conn_id": "tb_hostile_super", "query": READ_PASSWD})
    add("registry_itself", "database", {"conn_id": "registry_db", "table": "data_source_connections"})
    add("fine", "json", {"file_path": str(d / "ok.json")})
    with registry_bound(db), policy_variable(allowed):
        yield {"db": db, "reg": reg, "marker": marker, "dir": d}
    os.environ.pop("AIRFLOW_CONN_TB_HOSTILE_SUPER", None)


HOSTILE = ("shell", "preload", "inject", "environ", "passwd", "dotdot", "superuser", "registry_itself")


def run(source_id):
    from datasync.registry import runner

    try:
        return runner.run_source(source_id, run_id="tb")
    except runner.SourceSyncFailed as exc:
        return exc


def assert_nothing_leaked(hostile, caplog, capfd):
    db = hostile["db"]
    stored = json.dumps([db.query(f"SELECT * FROM {t}") for t in
                         ("data_source_sync_history", "data_source_registry", "sync_log", "sync_rejects")], default=str)
    out, err = capfd.readouterr()
    for place, text in (("tables", stored), ("log", caplog.text), ("stdout", out), ("stderr", err)):
        for secret in (VAR_SECRET, CONN_PASSWORD, "root:x:0:0"):
            assert secret not in text, f"{secret!r} reached the {place}"


@pytest.mark.parametrize("source_id, rule, names", [
    ("shell", None, "'command' names a command the platform allows"),
    ("preload", "artisan_commands", "artisan source 'sync': refused by registry policy rule 'artisan_commands': "
                                    "command 'sync' may not be given environment variable 'LD_PRELOAD'"),
    ("inject", "artisan_commands", "artisan source 'sync': refused by registry policy rule 'artisan_commands': "
                                   "parameter '--source=a\\n--eval=1'"),
    ("environ", "file_roots", "json source /proc/self/environ: refused by registry policy rule 'file_roots'"),
    ("passwd", "file_roots", "csv source /etc/passwd: refused by registry policy rule 'file_roots'"),
    ("dotdot", "file_roots", "(really /etc/passwd) is outside the allowed file roots"),
    ("superuser", "database_connections", "database source tb_hostile_super: refused by registry policy rule "
                                          "'database_connections': Airflow connection 'tb_hostile_super' logs in with "
                                          "server-wide powers (superuser role 'postgres'"),
    ("registry_itself", "database_connections", "database source registry_db: refused by registry policy rule "
                                                "'database_connections': Airflow connection 'registry_db' is not open"),
], ids=lambda v: v if v in HOSTILE else "")
def test_runner_records_the_refusal_and_leaks_nothing(hostile, caplog, capfd, source_id, rule, names):
    with caplog.at_level(logging.INFO):
        exc = run(source_id)
    assert isinstance(exc, Exception) and source_id in str(exc) and names in str(exc)
    h = hostile["reg"].history(source_id)[-1]
    assert h["sync_status"] == "failed" and names in h["error_message"]
    if rule:  # a shape refusal (the row cannot even say it) has no policy rule to extend
        assert f"refused by registry policy rule '{rule}'" in h["error_message"]
    assert h["records_processed"] == 0 and h["records_inserted"] == 0
    assert names in hostile["reg"].state(source_id)["last_error"]
    assert hostile["db"].query("SELECT to_regclass(%s)", (f"t_{source_id}",)) != [(None,)]  # made, and empty:
    assert hostile["db"].query(f"SELECT count(*) FROM t_{source_id}") == [(0,)]
    assert not hostile["marker"].exists()
    assert_nothing_leaked(hostile, caplog, capfd)


def test_runner_with_malformed_policy_fails_every_source_touching_nothing(hostile, caplog, capfd):
    with policy_variable('{"file_roots": ["/srv"], oops'), caplog.at_level(logging.INFO):
        exc = run("fine")
    assert "Airflow variable 'datasync_registry_policy' is not JSON" in str(exc)
    h = hostile["reg"].history("fine")[-1]
    assert h["sync_status"] == "failed" and "is not JSON" in h["error_message"]
    assert hostile["db"].query("SELECT to_regclass('t_fine')") == [(None,)]  # not even the target table
    assert "every source is refused" in caplog.text
    assert_nothing_leaked(hostile, caplog, capfd)


def test_runner_without_a_policy_reads_nothing(hostile, caplog, capfd):
    with policy_variable(None), caplog.at_level(logging.INFO):
        exc = run("fine")
    assert "json source" in str(exc) and "refused by registry policy rule 'file_roots'" in str(exc)
    assert "allowed file roots (none)" in hostile["reg"].history("fine")[-1]["error_message"]
    assert_nothing_leaked(hostile, caplog, capfd)


def test_runner_with_the_policy_reads_the_allowed_file(hostile):
    summary = run("fine")
    assert summary["status"] == "success" and summary["mappings"][0]["inserted"] == 1


@contextmanager
def _deadline(seconds: int):
    def fail(*_):
        raise TimeoutError(f"still blocked after {seconds}s")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

"""What a registry source may reach: platform-owned allowlists, read at run time, default deny.

Registry rows are written by the application's users; the worker, its connections and its
variables belong to the platform team. The team says what a row may use in one Airflow Variable,
``datasync_registry_policy`` (JSON; any secrets backend works)::

    {
      "artisan_commands": {
        "data_sync": {"argv": ["/usr/bin/php", "/srv/app/artisan", "data:sync"],
                      "working_directory": "/srv/app",
                      "parameters": ["--source=[a-z0-9_]+", "--since=\\\\d{4}-\\\\d{2}-\\\\d{2}"],
                      "env": ["API_TOKEN"]}
      },
      "file_roots": ["/srv/datasync/files"],
      "database_connections": ["machine_db"],
      "placeholder_connections": ["machine1_api"],
      "placeholder_variables": ["machine1_key"],
      "api_origins": ["https://api.machine1.example.com"],
      "api_private_networks": [],
      "limits": {"file_bytes": 104857600}
    }

A missing variable means "nothing is allowed". Every refusal is a :class:`PolicyRefused` naming
the rule, so the message tells the platform team which list to extend.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from datasync.registry.connectors.base import SourceConfigError

POLICY_VARIABLE = "datasync_registry_policy"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyRefused(SourceConfigError):
    """A registry row asked for something the platform team has not allowed."""

    def __init__(self, rule: str, detail: str, *, where: str | None = None) -> None:
        self.rule, self.detail, self.where = rule, detail, where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}refused by registry policy rule '{rule}': {detail}")

    def at(self, where: str) -> PolicyRefused:
        """The same refusal, naming the source it happened to."""
        return PolicyRefused(self.rule, self.detail, where=where)


class PolicyInvalid(SourceConfigError):
    """The policy variable itself is malformed: every source is refused until it is fixed."""


@dataclass(frozen=True)
class Limits:
    """Sizes past which a source is refused before it is parsed (bytes)."""

    file_bytes: int = 100 * 2**20
    xlsx_uncompressed_bytes: int = 200 * 2**20
    xlsx_shared_strings_bytes: int = 20 * 2**20
    api_response_bytes: int = 20 * 2**20
    command_output_bytes: int = 100 * 2**20

    def check(self, name: str, size: int, what: str, where: str) -> None:
        """Refuse ``size`` past limit ``name``, naming the source, the limit and its default."""
        limit = getattr(self, name)
        if size > limit:
            default = next(f.default for f in fields(self) if f.name == name)
            raise PolicyRefused(
                f"limits.{name}", f"{what} is {_mib(size)}, over the limit of {_mib(limit)} (default {_mib(default)}; "
                f"the platform team can raise it in the policy's \"limits\")", where=where)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


@dataclass(frozen=True)
class Command:
    """An artisan command the platform allows: a fixed argv prefix, parameters that must match."""

    name: str
    argv: tuple[str, ...]
    working_directory: str | None = None
    parameters: tuple[re.Pattern[str], ...] = ()
    env: frozenset[str] = frozenset()

    def check_parameter(self, value: str) -> None:
        if not any(p.fullmatch(value) for p in self.parameters):
            raise PolicyRefused(
                "artisan_commands", f"parameter {value!r} of command '{self.name}' matches none of its declared patterns"
            )

    def check_env(self, name: str) -> None:
        if name not in self.env:
            raise PolicyRefused("artisan_commands", f"command '{self.name}' may not be given environment variable {name!r}")


@dataclass(frozen=True)
class RegistryPolicy:
    artisan_commands: Mapping[str, Command] = field(default_factory=dict)
    file_roots: tuple[Path, ...] = ()
    database_connections: frozenset[str] = frozenset()
    placeholder_connections: frozenset[str] = frozenset()
    placeholder_variables: frozenset[str] = frozenset()
    api_origins: frozenset[str] = frozenset()
    api_private_networks: tuple[Network, ...] = ()
    limits: Limits = Limits()

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(cls) -> RegistryPolicy:
        """The policy in force now; deny-all when the variable does not exist."""
        from airflow.sdk import Variable

        try:
            raw = Variable.get(POLICY_VARIABLE, default=None)
        except Exception as exc:  # a backend that is down must not turn into "allow"
            raise PolicyInvalid(f"Airflow variable '{POLICY_VARIABLE}' could not be read: {type(exc).__name__}") from None
        return cls() if raw is None else cls.from_json(raw)

    @classmethod
    def from_json(cls, raw: str | Mapping[str, Any]) -> RegistryPolicy:
        try:
            doc = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise PolicyInvalid(f"Airflow variable '{POLICY_VARIABLE}' is not JSON: {exc}") from None
        if not isinstance(doc, Mapping):
            raise PolicyInvalid(f"Airflow variable '{POLICY_VARIABLE}' must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise PolicyInvalid(f"'{POLICY_VARIABLE}': unknown key(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(
                artisan_commands={name: _command(name, spec) for name, spec in _mapping(doc, "artisan_commands").items()},
                file_roots=tuple(_root(p) for p in _names(doc, "file_roots")),
                database_connections=frozenset(_names(doc, "database_connections")),
                placeholder_connections=frozenset(_names(doc, "placeholder_connections")),
                placeholder_variables=frozenset(_names(doc, "placeholder_variables")),
                api_origins=frozenset(origin(u) for u in _names(doc, "api_origins")),
                api_private_networks=tuple(ipaddress.ip_network(n, strict=False) for n in _names(doc, "api_private_networks")),
                limits=_limits(_mapping(doc, "limits")),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, PolicyInvalid):
                raise
            raise PolicyInvalid(f"'{POLICY_VARIABLE}': {exc}") from None

    # -- checks -----------------------------------------------------------------------------------
    def command(self, name: Any) -> Command:
        if not isinstance(name, str) or name not in self.artisan_commands:
            raise PolicyRefused("artisan_commands", f"command {name!r} is not one the platform allows "
                                f"(allowed: {sorted(self.artisan_commands) or 'none'})")
        return self.artisan_commands[name]

    def file(self, path: Any) -> Path:
        """The real path of ``path`` if it lies inside an allowed root (symlinks resolved first,
        so a link inside a root that points out of it is refused)."""
        text = str(path)
        if "\0" in text or not Path(text).is_absolute():
            raise PolicyRefused("file_roots", f"file path {text!r} must be an absolute path")
        try:
            real = Path(text).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise PolicyRefused("file_roots", f"file {text} cannot be resolved: {exc}") from None
        if not self.inside_roots(real):
            really = f" (really {real})" if str(real) != text else ""
            raise PolicyRefused("file_roots", f"file {text}{really} is outside the allowed file roots "
                                f"({', '.join(map(str, self.file_roots)) or 'none'})")
        return real

    def inside_roots(self, real: Path) -> bool:
        return any(real.is_relative_to(root) for root in self.file_roots)

    def database(self, conn_id: Any) -> str:
        if conn_id not in self.database_connections:
            raise PolicyRefused("database_connections", f"Airflow connection {conn_id!r} is not open to registry sources")
        return conn_id

    def connection_ref(self, conn_id: str) -> str:
        if conn_id not in self.placeholder_connections:
            raise PolicyRefused("placeholder_connections", f"placeholder may not reference Airflow connection {conn_id!r}")
        return conn_id

    def variable_ref(self, name: str) -> str:
        if name not in self.placeholder_variables:
            raise PolicyRefused("placeholder_variables", f"placeholder may not reference Airflow variable {name!r}")
        return name

    def api_url(self, url: str) -> list[str]:
        """Check an API URL (first request and every redirect): its origin must be allowed and every
        address its host resolves to public, or inside an allowed private network. Returns the
        addresses, so a caller can connect to exactly what was checked."""
        own = origin(url)
        if own not in self.api_origins:
            raise PolicyRefused("api_origins", f"API origin {own} is not allowed")
        parts = urlsplit(url)
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or _default_port(parts.scheme), proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise SourceConfigError(f"API host {parts.hostname} does not resolve: {exc}") from None
        addresses = sorted({info[4][0] for info in infos})
        for address in addresses:
            for ip in _reached(ipaddress.ip_address(address.split("%")[0])):
                if not ip.is_global and not any(ip in net for net in self.api_private_networks):
                    raise PolicyRefused("api_private_networks",
                                        f"API host {parts.hostname} resolves to non-public address {ip}")
        return addresses


def _reached(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and any IPv4 address embedded in it: ``::ffff:127.0.0.1`` *is* 127.0.0.1, and
    6to4/Teredo/NAT64 addresses lead to theirs, so each must pass on its own."""
    if ip.version == 4:
        return [ip]
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    embedded = [ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [ip, *(e for e in embedded if e is not None)]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Hosts made only of digits, dots and hex: resolvers read "2130706433", "0x7f.1", "0177.0.0.1" and
# "127.1" as 127.0.0.1. Only the canonical dotted quad is accepted, so what a policy or an error
# message shows is the address that is reached.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*", re.I)


def origin(url: str) -> str:
    """``scheme://host:port`` with the default port written out, lower-cased."""
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyRefused("api_origins", f"{shown_url(url)} is not an http(s) URL")
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError:
        raise PolicyRefused("api_origins", f"{shown_url(url)} has an invalid port") from None
    host = parts.hostname.lower()
    if _NUMERIC_HOST.fullmatch(host) and not _canonical_ipv4(host):
        raise PolicyRefused("api_origins", f"host {host!r} is an unusual spelling of an IP address; "
                            "write IPv4 addresses as four decimal numbers (e.g. 10.0.0.7)")
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def shown_url(url: Any) -> str:
    """A URL fit for a message: no user info, query or fragment (where credentials travel)."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
    except ValueError:  # unparsable (a bad port, an unclosed IPv6 bracket): say no more than the scheme
        return f"{str(url).split(':', 1)[0][:20]}://..."
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"[:300]


def _canonical_ipv4(host: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': '{key}' must be an object")
    return value


def _names(doc: Mapping[str, Any], key: str) -> list[str]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() == v and v for v in value):
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': '{key}' must be a list of non-empty strings")
    return value


def _root(path: str) -> Path:
    root = Path(path)
    if not root.is_absolute():
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': file root {path!r} must be an absolute path")
    return root.resolve()


def _command(name: str, spec: Any) -> Command:
    if not isinstance(spec, Mapping):
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': artisan command '{name}' must be an object")
    unknown = sorted(set(spec) - {"argv", "working_directory", "parameters", "env"})
    if unknown:
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': artisan command '{name}' has unknown key(s) {unknown}")
    argv = _names(spec, "argv")
    if not argv or not Path(argv[0]).is_absolute():
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': artisan command '{name}' needs an argv whose program is an absolute path")
    cwd = spec.get("working_directory")
    if cwd is not None and (not isinstance(cwd, str) or not Path(cwd).is_absolute()):
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': artisan command '{name}' working_directory must be an absolute path")
    try:
        patterns = tuple(re.compile(p) for p in _names(spec, "parameters"))
    except re.error as exc:
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': artisan command '{name}' has a bad parameter pattern: {exc}") from None
    return Command(name, tuple(argv), cwd, patterns, frozenset(_names(spec, "env")))


def _limits(doc: Mapping[str, Any]) -> Limits:
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PolicyInvalid(f"'{POLICY_VARIABLE}': unknown limit(s) {unknown}; known: {sorted(known)}")
    for key, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PolicyInvalid(f"'{POLICY_VARIABLE}': limit '{key}' must be a positive whole number of bytes")
    return Limits(**doc)

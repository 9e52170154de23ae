"""A requests transport adapter that connects only to addresses the registry policy checked.

requests resolves a host name again when it connects: a name that was public when it was
checked could by then point at 127.0.0.1 or the metadata service (DNS rebinding). So each request
is checked here, just before it is sent (``policy.api_url`` resolves the name and refuses what
the platform has not allowed), and its connection pool is keyed by the checked IP address while
the Host header and TLS (SNI and the certificate's name check) keep the host name. When a name
has several addresses all are checked and the first is used. Proxies are not used: a proxy
would resolve the name itself, unchecked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from requests import ConnectionError as RequestsConnectionError
from requests.adapters import HTTPAdapter

from datasync.registry.connectors.base import SourceConfigError
from datasync.registry.policy import PolicyRefused

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy


class PinnedAdapter(HTTPAdapter):
    def __init__(self, policy: RegistryPolicy) -> None:
        super().__init__(max_retries=0)
        self.policy = policy

    def send(self, request: Any, **kwargs: Any) -> Any:
        try:
            request.pinned_address = self.policy.api_url(request.url)[0]
        except PolicyRefused:  # nothing is sent
            raise
        except SourceConfigError as exc:  # the name does not resolve: as retryable as a refused connection
            raise RequestsConnectionError(str(exc), request=request) from None
        request.headers["Host"] = host_header(request.url)
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        # requests' documented hook for changing how a request picks its connection pool
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        name = host_params["host"]
        host_params["host"] = request.pinned_address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs


def host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"

"""The web console's own settings (environment: ``SPECLOOM_WEB_*``).

Field names carry the ``web_`` prefix so they never collide with the host's
settings: ``specloom serve web --listen`` sets the gRPC health port, not
the console's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WEB_LISTEN = "127.0.0.1:7421"


class WebSettings(BaseSettings):
    """Where the console listens, how it reaches the gateway, how live it is."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_", extra="ignore")

    web_listen: str = DEFAULT_WEB_LISTEN
    """Address the console's HTTP server binds (``host:port``; port 0 picks one).
    ``specloom up --web-listen`` sets it; ``off`` serves no console."""
    web_listen_fallback: bool = False
    """When web_listen's port is taken, serve on a free port instead and say
    so (``specloom up`` without ``--web-listen``: a second ``up`` on one
    machine still starts)."""
    web_gateway_address: str = ""
    """The gateway's gRPC address. Empty: this process's own address, which is
    right for ``specloom up``; a console of its own (``specloom serve web``)
    must name the gateway, e.g. ``gateway:7420``."""
    web_gateway_tls: bool = False
    """Dial the gateway over TLS (when it serves TLS itself)."""
    web_gateway_ca_file: Path | None = None
    """CA bundle that verifies the gateway's certificate (default: system roots)."""
    web_gateway_server_name: str = ""
    """Name to verify the gateway's certificate against when it differs from
    the address dialled (the public name, while dialling ``gateway:7420``)."""
    web_tls_cert_file: Path | None = None
    """Serve HTTPS with this certificate (PEM) when set, with web_tls_key_file."""
    web_tls_key_file: Path | None = None
    """Private key for web_tls_cert_file."""
    web_secure_cookies: bool | None = None
    """Mark cookies ``Secure``. Unset: when the console serves HTTPS itself. Set
    it to true when TLS ends at a proxy or Ingress in front of the console."""
    web_list_refresh_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often a live sessions list (or executors or project page) asks the
    gateway for changes. One listing per interval serves every open page with the same
    token and filters."""
    web_page_size: int = Field(default=50, ge=1, le=500)
    """Sessions per page of the list."""
    web_call_timeout_seconds: float = Field(default=15.0, gt=0)
    """Deadline of each gateway call made for a page."""
    web_max_live_streams: int = Field(default=2000, ge=1)
    """Live pages (server-sent event streams) served at once; more are told to
    retry later, so a crowd of open tabs cannot exhaust the process."""

    def serves_tls(self) -> bool:
        """Whether the console serves HTTPS itself."""
        return self.web_tls_cert_file is not None

    def cookies_secure(self) -> bool:
        """Whether cookies carry the ``Secure`` attribute."""
        if self.web_secure_cookies is not None:
            return self.web_secure_cookies
        return self.serves_tls()

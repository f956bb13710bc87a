"""The console under TLS: it serves HTTPS, marks its cookies Secure, and dials a TLS gateway."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import httpx

from specloom.host import HostSettings, discover
from specloom.process import start_host
from tests.fixtures.pki import certificates
from tests.web.conftest import Console


async def test_the_console_serves_https_with_secure_cookies_over_a_tls_gateway(
    console: Console, tmp_path: Path
) -> None:
    ca, cert, key = certificates(tmp_path / "pki")
    specs = discover()
    # The production shape: a gateway serving TLS, and a console of its own
    # that dials it with TLS and serves HTTPS itself.
    gateway = await start_host(
        [specs["gateway"]],
        HostSettings(
            listen="127.0.0.1:0",
            sessions_address=console.host.address,
            orchestrator_addresses=[console.host.address],
            internal_secret=console.settings.internal_secret,
            tls_cert_file=cert,
            tls_key_file=key,
            grace_seconds=1,
        ),
    )
    web = await start_host(
        [specs["web"]],
        HostSettings(listen="127.0.0.1:0", grace_seconds=1),
        {
            "web_listen": "127.0.0.1:0",
            "web_gateway_address": gateway.address,
            "web_gateway_tls": True,
            "web_gateway_ca_file": ca,
            "web_tls_cert_file": cert,
            "web_tls_key_file": key,
        },
    )
    try:
        url = web.endpoints["web"]
        assert url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(base_url=url, verify=trust, timeout=15) as browser:
            form = await browser.get("/signin")
            assert "Secure" in form.headers["set-cookie"]
            nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
            assert nonce is not None
            signed_in = await browser.post(
                "/signin", data={"token": console.token, "nonce": nonce[1]}
            )
            assert signed_in.status_code == 303
            cookie = next(
                v for v in signed_in.headers.get_list("set-cookie") if "specloom_token=" in v
            )
            assert "Secure" in cookie
            assert "HttpOnly" in cookie
            page = await browser.get("/sessions")
            assert page.status_code == 200, page.text
            assert "alice · default" in page.text, "the page came through the TLS gateway"
    finally:
        await web.stop(1)
        await gateway.stop(1)

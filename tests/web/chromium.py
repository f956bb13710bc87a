"""Debian's Chromium under Selenium, headless, with a fresh profile: never a downloaded browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def require_chromium() -> None:
    """Skip, saying how to install them, when the system browser or its driver is missing."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMEDRIVER)) is None:
        pytest.skip(
            "browser tests need Debian's chromium and chromium-driver "
            "(tools/system_deps.sh installs them; `make test` runs it)"
        )


def start_browser(profile: Path):  # type: ignore[no-untyped-def]
    """A headless Chromium driven through chromedriver, with ``profile`` as its user data."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))

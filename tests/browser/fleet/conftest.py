"""A minimal browser harness for the partner tests until the shared one (tests/browser/conftest.py, web-core)
lands: Debian's headless Chromium through /usr/bin/chromedriver (never downloaded), a console served on
loopback from a background thread, screenshots in ``$WIPE_AGENT_ARTEFACTS``."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def artefacts() -> Path:
    directory = Path(os.environ.get("WIPE_AGENT_ARTEFACTS", "/tmp/wipe-agent-artefacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(driver: Any, name: str) -> Path:
    path = artefacts() / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
    assert driver.save_screenshot(str(path)), f"the screenshot {path} was not written"
    return path


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def partner_browser(downloads: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, downloads allowed into ``downloads``."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            reason = f"{path} is missing (scripts/setup.sh --test installs chromium and chromium-driver)"
            if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
                pytest.fail(f"WIPE_AGENT_REQUIRE_ROOT=1 but the browser tests cannot run: {reason}")
            pytest.skip(reason)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never goes online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wipe-agent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1366,900", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class ConsoleServer:
    """An aiohttp application on 127.0.0.1:<free port>, its own event loop in a background thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.base = ""

    def start(self) -> ConsoleServer:
        self.thread.start()

        async def up() -> str:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            host, port = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
            return f"http://{host}:{port}"

        self.base = asyncio.run_coroutine_threadsafe(up(), self.loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

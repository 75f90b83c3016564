"""A real browser for tests: headless Chromium driven by Selenium, shared by every browser test.

Debian's `chromium` and `chromium-driver` packages (scripts/install.sh installs them when run as root) and the
`selenium` package (the `test` extra). When any of them is missing, `headless_chromium` skips the test and says
which. Screenshots and other browser outputs go to `artifact_dir()`: $FACEDANCER_TEST_ARTIFACTS, else
tests/artifacts/ (ignored by git; CI keeps it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
DEBIAN_HINT = "apt-get install chromium chromium-driver (or run scripts/install.sh as root)"


def _find(names: tuple[str, ...], env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((found for name in names if (found := shutil.which(name))), None)


def artifact_dir() -> Path:
    folder = Path(os.environ.get("FACEDANCER_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1600, timeout: float = 60.0) -> Iterator:
    """A Selenium WebDriver on headless Chromium (quit on exit); skips the test when no browser is present.

    $CHROMIUM / $CHROMEDRIVER override the binaries found on PATH."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    browser, driver_path = _find(BROWSERS, "CHROMIUM"), _find(DRIVERS, "CHROMEDRIVER")
    if not browser or not driver_path:
        pytest.skip(f"no {'Chromium' if not browser else 'chromedriver'} found: {DEBIAN_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",  # containers and root: Chromium's sandbox needs namespaces they often lack
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-file-access-from-files",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(timeout)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0, poll: float = 0.25):
    """Run `script` (a JavaScript expression's `return …`) until it returns something truthy; returns it."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=poll).until(lambda d: d.execute_script(script))

"""Debian's headless chromium, driven by selenium through Debian's chromedriver: signing in to
Airflow and looking at the Data sync page as a person would.

Also a tool: ``python tests/monitor/browser.py docs/img/data-sync.png [PAGE ...]`` starts the API
server with the plugin against the ``make demo`` databases, signs in and saves screenshots (the
overview inside Airflow's UI by default).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1500,1000"]


@contextmanager
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="datasync-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()  # stops chromedriver and the browser it started
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(driver, base: str, user: str, password: str, page: str = "/datasync/") -> None:
    """Open ``page`` signed out, follow its sign-in link to Airflow's login form, sign in, and come back."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + page)
    driver.find_element(By.LINK_TEXT, "Sign in to Airflow").click()
    wait = WebDriverWait(driver, 60)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith(page.rstrip("/")) and d.find_elements(By.TAG_NAME, "table"))


def screenshot(driver, path: Path, height: int | None = None) -> Path:
    """The page from its top: ``height`` CSS pixels of it, or all of it (Chrome DevTools can
    capture beyond the window)."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(height or size["height"], size["height"]), "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def demo_screenshot(out: Path, pages: list[str] | None = None) -> None:
    """Screenshots of ``pages`` (paths; default the overview in Airflow's UI) on the ``make demo`` data: the first
    to ``out``, the others beside it as ``<out>-2.png``, ..."""
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness import AIRFLOW_HOME, REPO  # noqa: F401  (sets Airflow's environment)

    from devtools.demo import DEMO_DATABASES, _uri
    from monitor_server import PASSWORD, USER, api_server_process

    for conn_id in DEMO_DATABASES:
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = _uri(conn_id)
    if not (AIRFLOW_HOME / "airflow.db").exists():
        import subprocess

        AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    # the demo's own Airflow metadata DB (its DAGs and their next runs) when make demo made one
    demo_db = REPO / ".airflow" / "airflow.db"
    with tempfile.TemporaryDirectory() as home, api_server_process(Path(home), Path(home) / "api-server.log",
                                                                   demo_db if demo_db.exists() else None) as base:
        with chromium() as driver:
            sign_in(driver, base, USER, PASSWORD)
            for n, page in enumerate(pages or ["/plugin/datasync"]):
                if driver.current_url != base + page:
                    driver.get(base + page)
                if page.startswith("/plugin/"):  # Airflow's UI: wait for the page inside its frame
                    from selenium.webdriver.common.by import By
                    from selenium.webdriver.support.ui import WebDriverWait

                    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))
                    driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))
                    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.TAG_NAME, "table"))
                    driver.switch_to.default_content()
                path = out if n == 0 else out.with_name(f"{out.stem}-{n + 1}{out.suffix}")
                print(screenshot(driver, path.resolve(), height=900))


if __name__ == "__main__":
    demo_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/data-sync.png"), sys.argv[2:] or None)

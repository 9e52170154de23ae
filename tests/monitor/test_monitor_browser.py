"""End to end: ``airflow api-server`` with the plugin (its own AIRFLOW_HOME, SimpleAuthManager), a
real headless chromium signing in and reading the Data sync page."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import chromium, screenshot, sign_in
from monitor_server import PASSWORD, USER, api_server_process
from monitor_world import API_TOKEN, REGISTRY_PASSWORD


@pytest.fixture(scope="module")
def api_server(world, airflow_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    with api_server_process(home, home / "api-server.log") as base:
        yield base


def test_a_signed_in_user_sees_failures_errors_and_rejects(api_server, world, tmp_path):
    with chromium() as driver:
        driver.get(api_server + "/datasync/")
        assert "not signed in" in driver.page_source.lower()
        assert world.failing_source not in driver.page_source

        sign_in(driver, api_server, USER, PASSWORD)

        # the overview: problems first, the failed registry source with its error
        rows = driver.find_elements(By.CSS_SELECTOR, "#syncs tr.sync")
        statuses = [r.get_attribute("data-status") for r in rows]
        assert statuses[0] in ("error", "failed") and statuses.index("ok") > statuses.index("error")
        failing = next(r for r in rows if world.failing_source in r.text)
        assert "error" in failing.text and world.failing_error_fragment in failing.text
        assert REGISTRY_PASSWORD not in driver.page_source and API_TOKEN not in driver.page_source
        shot = screenshot(driver, tmp_path / "overview.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # filter by pipeline, as a person does with the select
        Select(driver.find_element(By.NAME, "pipeline")).select_by_visible_text("lifecycle")
        WebDriverWait(driver, 30).until(lambda d: "pipeline=lifecycle" in d.current_url)
        names = [r.find_elements(By.TAG_NAME, "td")[2].text for r in driver.find_elements(By.CSS_SELECTOR, "#syncs tr.sync")]
        assert sorted(names) == sorted([world.reject_sync, world.failed_sync])

        # the sync with a rejected row: history chart, the reject with its column and value
        driver.find_element(By.LINK_TEXT, world.reject_sync).click()
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")
        reject = driver.find_element(By.CSS_SELECTOR, "table.rejects tbody tr")
        assert reject.find_element(By.CSS_SELECTOR, "td.reject-column").text == world.reject_column
        assert world.reject_value in reject.text
        link = driver.find_element(By.LINK_TEXT, "task instance")
        assert link.get_attribute("href").endswith("/dags/lifecycle_sync/runs/scheduled__run2/tasks/sync_products")

        # the registry view: the failed source first, with its error and error count
        driver.find_element(By.LINK_TEXT, "Registry").click()
        first = driver.find_element(By.CSS_SELECTOR, "#sources tr.source")
        assert world.failing_source in first.text and world.failing_error_fragment in first.text
        assert "api_key=***" in first.text

        # inside Airflow's own UI: the navigation entry opens the page in the UI's frame
        driver.get(api_server + "/plugin/datasync")
        frame = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe[src*='/datasync/']"))
        assert driver.find_elements(By.XPATH, "//a[contains(., 'Data sync')]") or "Data sync" in driver.page_source
        driver.switch_to.frame(frame)
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#syncs tr.sync"))
        assert world.failing_source in driver.find_element(By.ID, "syncs").text
        driver.switch_to.default_content()

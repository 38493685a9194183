"""The operator console driven in headless Chromium (Debian's chromium and chromium-driver, never a downloaded
browser) against the gateway as a real server: log in, make a team and a key restricted to an access group, copy the
one-time key, call /v1/chat/completions with it through the openai SDK, block it in the admin, see the call fail.

A second gateway serves `seed_demo`'s data, and every main page is opened in the browser. With MODELGATE_SCREENSHOTS=1
the pages are saved to docs/screenshots/ (the README shows them); without it nothing in the tree is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import E2EDatabase, GatewayProcess
from tests.e2e.support import assert_sdk_error, poll, sdk

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "docs" / "screenshots"
OPERATOR, PASSWORD = "operator", "browser-test-pass-4821"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
)

CONFIG = """
model_list:
  - model_name: gpt-4
    litellm_params: {model: openai/gpt-4, api_key: os.environ/UPSTREAM_KEY, api_base: "{base}"}
    model_info: {access_groups: ["beta-models"]}
  - model_name: llama-3-70b
    litellm_params: {model: openai/llama-3-70b, api_key: os.environ/UPSTREAM_KEY, api_base: "{base}"}
    model_info: {access_groups: ["beta-models"]}
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/UPSTREAM_KEY, api_base: "{base}"}
"""


def _require_browser() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    message = "needs Debian's chromium and chromium-driver (.ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _subprocess_env(database_url: str, data_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update(DATABASE_URL=database_url, MODELGATE_DATA_DIR=str(data_dir), **extra)
    return env


def _createadmin(database_url: str, data_dir: Path) -> None:
    """The operator, made as the README says: `modelgate createadmin`, on the gateway's database."""
    env = _subprocess_env(database_url, data_dir, MODELGATE_ADMIN_PASSWORD=PASSWORD)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "createadmin", "--username", OPERATOR, "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


class Browser:
    """A Selenium-driven headless Chromium on a fresh profile, with the few helpers the tests need."""

    def __init__(self, base_url: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url
        self.profile = tempfile.TemporaryDirectory(prefix="mg-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(30)

    def quit(self) -> None:
        self.driver.quit()
        self.profile.cleanup()

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        assert "Server Error" not in self.driver.title and "Traceback" not in self.driver.page_source

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text

    def click_and_wait(self, element) -> None:
        """Click something that loads a new page, and wait until that page has loaded.

        The old page is marked with a window property; the new page has none. This does not hold on to an element of
        the old page, whose staleness some ChromeDriver builds report as an inspector error instead of a stale element.
        """
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        self.driver.execute_script("window.__modelgateOldPage = true;")
        element.click()
        wait = WebDriverWait(self.driver, 30, ignored_exceptions=(WebDriverException,))
        wait.until(
            lambda driver: driver.execute_script(
                "return window.__modelgateOldPage === undefined && document.readyState === 'complete';"
            )
        )
        assert "Server Error" not in self.driver.title and "Traceback" not in self.driver.page_source

    def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.click_and_wait(self.driver.find_element(By.LINK_TEXT, text))

    def type(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def check(self, name: str, value: str, checked: bool = True) -> None:
        box = self.find(f'input[name="{name}"][value="{value}"]')
        if box.is_selected() != checked:
            box.click()

    def submit(self, css: str = 'input[name="_save"]') -> None:
        self.click_and_wait(self.find(css))

    def login(self) -> None:
        self.open("/admin/login/?next=/admin/")
        self.type("#id_username", OPERATOR)
        self.type("#id_password", PASSWORD)
        self.submit('input[type="submit"]')
        assert "Spend at a glance" in self.driver.page_source, self.find("body").text[:600]

    def screenshot(self, name: str) -> None:
        """The whole page, saved to docs/screenshots/NAME.png only when MODELGATE_SCREENSHOTS=1."""
        if os.environ.get("MODELGATE_SCREENSHOTS") != "1":
            return
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1440, min(max(int(height), 700), 2200))
        self.driver.execute_script("window.scrollTo(0, 0)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.driver.set_window_size(1440, 1000)


# --- the flow on a gateway with an access group on a model of the fake upstream -------------------------------------
@pytest.fixture(scope="module")
def upstream():
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory, upstream):
    _require_browser()
    data_dir = tmp_path_factory.mktemp("console")
    database = E2EDatabase(data_dir)
    config = data_dir / "config.yaml"
    config.write_text(CONFIG.replace("{base}", upstream.url))
    gateway = GatewayProcess(
        database_url=database.url, config_path=config, data_dir=data_dir, env={"UPSTREAM_KEY": "upstream-secret"}
    ).start()
    _createadmin(database.url, data_dir)
    browser = Browser(gateway.url)
    try:
        yield gateway, browser
    finally:
        browser.quit()
        gateway.stop()
        database.drop()


def test_operator_restricts_a_key_to_an_access_group_and_blocks_it(console):
    gateway, browser = console
    browser.login()

    # a team that may use the access group beta-models
    browser.open("/admin/accounts/team/add/")
    browser.type("#id_team_alias", "browser-team")
    browser.check("models_0", "beta-models")
    browser.submit()
    assert "browser-team" in browser.text(".messagelist")
    browser.click_link("browser-team")
    assert [e.text for e in browser.find_all("#team-callable-models li")] == ["gpt-4", "llama-3-70b"]

    # a key of that team: a model outside the team is refused on the field, then the group alone is accepted
    browser.submit("#add-key-for-team")
    browser.type("#id_key_alias", "browser-key")
    browser.check("models_0", "beta-models")
    browser.check("models_0", "gpt-4o")
    browser.submit()
    error = browser.text(".field-models .errorlist")
    assert "Model 'gpt-4o' is not allowed for team 'browser-team'" in error
    browser.check("models_0", "gpt-4o", checked=False)
    assert browser.find('input[name="models_0"][value="beta-models"]').is_selected()
    browser.submit()

    # the one-time page: the key, a copy button aimed at it, a warning
    plaintext = browser.text("#new-key")
    assert plaintext.startswith("sk-") and len(plaintext) >= 25
    assert browser.find(".mg-copy").get_attribute("data-copy-target") == "new-key"
    assert "can never be shown again" in browser.text("#one-time-warning")
    browser.find(".mg-copy").click()
    assert poll(lambda: browser.text(".mg-copy") in ("Copied", "Selected: press Ctrl+C"), seconds=3) is not None
    browser.screenshot("key-created")

    # the key through the official SDK: the group's model answers, a model outside it is refused by the key layer
    client = sdk(gateway.url, plaintext)
    answer = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hello admin"}])
    assert answer.choices[0].message.content == "echo: hello admin"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    denial = ("key_model_access_denied", "model_not_allowed")
    body = assert_sdk_error(denied.value, openai.PermissionDeniedError, 403, *denial)
    assert "'gpt-4o'" in body["message"] and "gpt-4, llama-3-70b" in body["message"]

    # the key's page: what it may call now, and "try it" with the relay's own answer
    browser.submit("#go-to-key")
    assert plaintext not in browser.driver.page_source
    assert [e.text for e in browser.find_all("#callable-models li")] == ["gpt-4", "llama-3-70b"]
    browser.type("#try-model", "gpt-4o")
    browser.submit('#try-it input[type="submit"]')
    assert browser.text("#try-result") == f"Denied: 403 key_model_access_denied / model_not_allowed. {body['message']}"

    # block it from the key list; the relay refuses it within SPEC's 5 seconds (two workers, each with a cache)
    browser.open("/admin/accounts/virtualkey/?q=browser-key")
    browser.find("input.action-select").click()
    from selenium.webdriver.support.select import Select

    Select(browser.find('select[name="action"]')).select_by_value("block_keys")
    browser.submit('button[name="index"]')
    assert "Blocked 1 key(s)" in browser.text(".messagelist")
    assert "BLOCKED" in browser.text("#result_list td.field-status").upper()

    def blocked() -> bool:
        try:
            client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError as exc:
            assert_sdk_error(exc, openai.AuthenticationError, 401, "authentication_error", "blocked_key")
            return True
        return False

    took = poll(blocked, seconds=10, interval=0.25)
    assert took is not None and took <= 7, took


# --- every main page with seed_demo's data --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    _require_browser()
    data_dir = tmp_path_factory.mktemp("demo")
    database = E2EDatabase(data_dir)
    gateway = GatewayProcess(
        database_url=database.url,
        config_path=ROOT / "examples" / "config.yaml",
        data_dir=data_dir,
        env={"OPENAI_API_KEY": "sk-demo-openai", "AZURE_API_KEY": "azure-demo", "AZURE_API_BASE": "https://x.example"},
        workers=1,
    ).start()
    seeded = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT, env=_subprocess_env(database.url, data_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    _createadmin(database.url, data_dir)
    browser = Browser(gateway.url)
    try:
        browser.login()
        yield browser
    finally:
        browser.quit()
        gateway.stop()
        database.drop()


def test_main_pages_render_with_demo_data(demo):
    browser = demo
    browser.open("/admin/")
    assert int(browser.text("#mg-requests-month")) > 0
    assert len(browser.find_all("svg.mg-chart rect.mg-bar-ok")) == 14
    assert len(browser.find_all("#mg-top-keys tbody tr")) == 5
    browser.screenshot("index")

    browser.open("/admin/accounts/virtualkey/")
    assert len(browser.find_all("#result_list tbody tr")) == 12
    statuses = {e.text.lower() for e in browser.find_all("#result_list td.field-status")}
    assert statuses == {"active", "blocked", "expired", "team blocked"}
    browser.screenshot("keys")

    browser.open("/admin/accounts/virtualkey/add/")
    groups = [e.get_attribute("value") for e in browser.find_all('input[name="models_0"]')]
    assert {"all-team-models", "beta-models", "gpt-4o", "openai/*"} <= set(groups)
    browser.screenshot("key-add")

    browser.open("/admin/accounts/virtualkey/?q=research-ci")
    browser.click_link("research-ci")
    browser.type("#try-model", "gpt-4o")
    browser.submit('#try-it input[type="submit"]')
    assert browser.text("#try-result").startswith("Denied: 403")
    assert [e.text for e in browser.find_all("#callable-models li")] == [
        "mock-gpt",
        "gpt-4",
        "fireworks-llama-v3-70b-instruct",
    ]
    browser.screenshot("key-change")

    browser.open("/admin/accounts/team/")
    assert len(browser.find_all("#result_list tbody tr")) == 5
    browser.screenshot("teams")
    browser.click_link("ml-research")
    assert len(browser.find_all(".inline-group tbody tr")) >= 3
    browser.screenshot("team-change")
    browser.open(browser.driver.current_url.replace("/change/", "/delete/").removeprefix(browser.base_url))
    assert "still has 3 keys" in browser.driver.page_source
    browser.screenshot("team-delete")

    browser.open("/admin/models_registry/deployment/")
    assert "os.environ/FIREWORKS" in browser.text("#result_list")
    assert "sk-demo-openai" not in browser.driver.page_source
    browser.screenshot("deployments")
    browser.click_link("gpt-4")
    assert "Config-managed" in browser.text("#config-managed")
    assert "research-ci" in browser.text("#reach-keys")
    browser.screenshot("deployment-change")

    browser.open("/admin/models_registry/accessgroup/")
    browser.click_link("beta-models")
    assert "gpt-4" in browser.text("#group-deployments")
    assert "research-ci" in browser.text("#group-keys")
    browser.screenshot("access-group")

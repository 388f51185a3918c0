"""The web console (/console/) in a real browser: Debian's chromium driven by Selenium, headless.

Accounts are real local accounts (`imaged account create`); images are made through the OpenStack API and
the console must show the same catalog. Each test asserts on the page and, where it changes something, on
the catalog through the API. Screenshots of the main pages at 1280×800 (and one at phone width) go to
$IMAGED_TEST_OUTPUT/screenshots (default .build/test-output/screenshots).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from conftest import ImagedServer, imaged_bin, unique

PASSWORD = "Console-" + unique("pw")
SHOTS = Path(os.environ.get("IMAGED_TEST_OUTPUT", Path(__file__).resolve().parents[2] / ".build" / "test-output")) / "screenshots"


def imaged(*args, stdin=None):
    proc = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Console:
    """A server with three accounts: alice (member of p-alice), rita (reader of p-alice), bob (member of p-bob)."""

    def __init__(self, srv: ImagedServer):
        self.srv = srv
        self.url = srv.url
        self.keys = {}
        for name, project, role in [("alice", "p-alice", "member"), ("rita", "p-alice", "reader"), ("bob", "p-bob", "member"),
                                    ("root", "admin", "admin")]:
            imaged("account", "create", name, "--project", project, "--role", role, "--password-stdin",
                   "--data-dir", str(srv.data_dir), stdin=PASSWORD + "\n")
            out = imaged("account", "key", "create", name, "--data-dir", str(srv.data_dir))
            key_id = re.search(r"^key id: (\S+)$", out, re.M).group(1)
            secret = re.search(r"^secret: (\S+)$", out, re.M).group(1)
            self.keys[name] = f"{key_id}:{secret}"

    def api(self, who, method, path, **kw):
        headers = {"X-Auth-Token": self.keys[who], **kw.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def create(self, who, **body):
        r = self.api(who, "POST", "/v2/images", json={"disk_format": "raw", "container_format": "bare", **body})
        assert r.status_code == 201, r.text
        return r.json()

    def upload(self, who, image_id, data: bytes):
        r = self.api(who, "PUT", f"/v2/images/{image_id}/file", data=data, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        return self.api(who, "GET", f"/v2/images/{image_id}").json()

    def task(self, who, image_id, task_id):
        """A task as the image's task list shows it (`GET /v2/tasks/{id}` is for admins)."""
        tasks = self.api(who, "GET", f"/v2/images/{image_id}/tasks").json()["tasks"]
        return next(t for t in tasks if t["id"] == task_id)

    def session(self, who) -> requests.Session:
        """A logged-in HTTP session (cookies as a browser keeps them), for the header and CSRF checks."""
        s = requests.Session()
        page = s.get(self.url + "/console/login", timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = s.post(self.url + "/console/login", data={"csrf": csrf, "username": who, "password": PASSWORD},
                   allow_redirects=False, timeout=60)
        assert r.status_code == 303, r.text
        return s


@pytest.fixture(scope="module")
def console(tmp_path_factory, origin):
    # Imports may fetch from the test's origin (127.0.0.1, its port only); short leases, so progress and
    # cancels show within a second.
    srv = ImagedServer(tmp_path_factory.mktemp("console"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--task-lease-seconds", "3")
    srv.start()
    c = Console(srv)
    imaged("quota", "set", "p-alice", "--image-count", "1000", "--image-size", "20GiB", "--data-dir", str(srv.data_dir))
    yield c
    srv.kill()


def chromium_paths():
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    assert Path(browser).exists() and Path(driver).exists(), "chromium and chromium-driver (Debian) are needed: scripts/test.sh installs them"
    return browser, driver


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800",
                "--disable-extensions", "--no-first-run", "--password-store=basic"]:
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    b.set_page_load_timeout(60)
    viewport(b, 1280, 800)
    yield b
    b.quit()


def viewport(browser, width, height, mobile=False):
    """The page's own size (the window's minus nothing: headless has no toolbar), so screenshots are exactly this."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def shot(browser, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 5000  # a rendered page, not a blank one
    with open(path, "rb") as f:
        head = f.read(24)
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == tuple(browser.execute_script("return [window.innerWidth, window.innerHeight]")), path
    return path


def log_in(browser, console, who, next_path=None):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(console.url + "/console/login" + (("?" + urlencode({"next": next_path})) if next_path else ""))
    browser.find_element(By.ID, "username").send_keys(who)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_page(browser, lambda b: "/console/login" not in b.current_url and b.find_elements(By.CSS_SELECTOR, "header .who"))


def wait_page(browser, condition, timeout=30):
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # While a page is being replaced, chromedriver may answer a look at the old one with an inspector error
    # ("Node with given id does not belong to the document"): that is "not yet", asked again.
    WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException, WebDriverException)).until(condition)


def click_and_wait(browser, element):
    """Clicks a link or button that loads a new page and waits until the old one is gone."""
    from selenium.webdriver.support import expected_conditions as EC

    element.click()

    def gone(b):
        try:
            return EC.staleness_of(element)(b)
        except Exception as e:  # the inspector's "does not belong to the document": the old page is gone
            return "does not belong to the document" in str(e)
    wait_page(browser, gone)


def rows(browser):
    from selenium.webdriver.common.by import By

    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in browser.find_elements(By.CSS_SELECTOR, "table.images tbody tr")]


def test_a_browser_asking_for_the_root_is_sent_to_the_console_and_api_clients_are_not(console):
    r = requests.get(console.url + "/", headers={"Accept": "text/html,application/xhtml+xml"}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/console/images"
    api = requests.get(console.url + "/", headers={"Accept": "application/json"}, allow_redirects=False, timeout=30)
    assert api.status_code in (200, 300) and "versions" in api.json()
    # Without a session a console page leads to the login form, which then returns to the page asked for.
    page = requests.get(console.url + "/console/images?status=active", allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert page.headers["Location"] == "/console/login?" + urlencode({"next": "/console/images?status=active"})


def test_log_in_see_the_catalog_filter_sort_and_open_an_image(console, browser):
    from selenium.webdriver.common.by import By

    tag = unique("t")
    data = os.urandom(256 << 10)
    hostile = f"<script>alert('x')</script> {tag}"
    plain = console.create("alice", name=f"alpha-{tag}", tags=[tag, "web"], os_distro="debian")
    console.upload("alice", plain["id"], data)
    evil = console.create("alice", name=hostile, tags=[tag], note="<b>bold</b> & \"quoted\"")
    bobs = console.create("bob", name=f"bob-only-{tag}", tags=[tag])

    log_in(browser, console, "alice", next_path=f"/console/images?tag={tag}")
    assert browser.current_url == console.url + f"/console/images?tag={tag}"
    names = [r[0] for r in rows(browser)]
    # alice sees her two images, not bob's private one; the hostile name is text, not markup.
    assert sorted(names) == sorted([f"alpha-{tag}", hostile])
    assert browser.execute_script("return window.__xss === undefined && document.querySelectorAll('main script').length === 0")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in browser.page_source or "&lt;script&gt;alert('x')&lt;/script&gt;" in browser.page_source
    shot(browser, "console-images")

    # Sorting by name is a link, and the URL says so (bookmarkable).
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Name"))
    assert "sort=name" in browser.current_url and "dir=asc" in browser.current_url
    assert [r[0] for r in rows(browser)] == sorted(names)
    click_and_wait(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Name"))
    assert [r[0] for r in rows(browser)] == sorted(names, reverse=True)

    # The name search narrows it, as a bookmarkable URL.
    browser.get(console.url + "/console/images?" + urlencode({"q": "ALPHA-" + tag[:6], "tag": tag}))
    assert [r[0] for r in rows(browser)] == [f"alpha-{tag}"]
    row = rows(browser)[0]
    assert row[1] == "active" and row[2] == "raw" and row[3] == "256 KiB" and row[4] == "shared"  # Glance's default visibility

    # The image page: every attribute, the digests the API reports, and the image as each API shows it.
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, f"alpha-{tag}"))
    assert browser.find_element(By.ID, "image-name").text == f"alpha-{tag}"
    api = console.api("alice", "GET", f"/v2/images/{plain['id']}").json()
    page = browser.find_element(By.TAG_NAME, "main").text
    assert api["checksum"] in page and api["os_hash_value"] in page and plain["id"] in page
    views = {s.find_element(By.TAG_NAME, "h3").text: s.find_element(By.TAG_NAME, "pre").text
             for s in browser.find_elements(By.CSS_SELECTOR, "section.api-view")}
    assert set(views) == {"OpenStack", "Avi", "ZStack", "Danube", "Scalr"}
    import json
    assert json.loads(views["OpenStack"])["checksum"] == api["checksum"]
    assert json.loads(views["OpenStack"])["os_distro"] == "debian"
    assert json.loads(views["ZStack"])["md5Sum"] == api["checksum"] or api["checksum"] in views["ZStack"]
    for name in ("Avi", "Danube", "Scalr"):
        assert plain["id"].replace("-", "") in views[name].replace("-", "") or f"alpha-{tag}" in views[name], name
    shot(browser, "console-image")

    # The hostile image's page: its name and property are text.
    browser.get(console.url + f"/console/images/{evil['id']}")
    assert browser.find_element(By.ID, "image-name").text == hostile
    assert "<b>bold</b> & \"quoted\"" in browser.find_element(By.TAG_NAME, "main").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main b")

    # bob's private image is not alice's to see, by URL either.
    browser.get(console.url + f"/console/images/{bobs['id']}")
    assert "404" in browser.find_element(By.TAG_NAME, "h1").text

    # Phone width: the list still works (fewer columns).
    viewport(browser, 390, 844, mobile=True)
    browser.get(console.url + f"/console/images?tag={tag}")
    assert len(rows(browser)) == 2
    # Nothing wider than the screen but the table's own scroller.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    shot(browser, "console-images-phone")
    viewport(browser, 1280, 800)


def test_paging_walks_every_image_once(console, browser):
    from selenium.webdriver.common.by import By

    tag = unique("page")
    made = {console.create("alice", name=f"p{i:02d}-{tag}", tags=[tag])["id"] for i in range(7)}
    log_in(browser, console, "alice", next_path=f"/console/images?tag={tag}&limit=3&sort=name&dir=asc")
    seen = []
    while True:
        seen += [r[0] for r in rows(browser)]
        nxt = browser.find_elements(By.CSS_SELECTOR, "a[rel=next]")
        if not nxt:
            break
        click_and_wait(browser, nxt[0])
    assert seen == [f"p{i:02d}-{tag}" for i in range(7)]
    assert len(made) == 7


def test_a_reader_gets_no_create_button_and_an_admin_sees_owners(console, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, console, "rita")
    assert browser.current_url.endswith("/console/images")
    assert not browser.find_elements(By.ID, "new-image")
    assert not browser.find_elements(By.NAME, "owner")
    log_in(browser, console, "alice")
    assert browser.find_elements(By.ID, "new-image")
    log_in(browser, console, "root")
    assert browser.find_elements(By.NAME, "owner")
    tag = unique("adm")
    console.create("bob", name=f"b-{tag}", tags=[tag])
    browser.get(console.url + "/console/images?" + urlencode({"tag": tag, "owner": "p-bob", "visibility": "all"}))
    assert [r[0] for r in rows(browser)] == [f"b-{tag}"]


def test_wrong_passwords_are_refused_then_throttled(console):
    s = requests.Session()
    page = s.get(console.url + "/console/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    statuses = []
    for _ in range(7):
        r = s.post(console.url + "/console/login", data={"csrf": csrf, "username": "bob", "password": "wrong"},
                   allow_redirects=False, timeout=60)
        statuses.append(r.status_code)
        if r.status_code == 401:
            assert "Wrong user name or password." in r.text and "imaged_console=" not in r.headers.get("Set-Cookie", "")
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    assert int(r.headers["Retry-After"]) >= 1 and "Too many attempts" in r.text
    # The right password is throttled too while the lock lasts (the lock is per account and address).
    r = s.post(console.url + "/console/login", data={"csrf": csrf, "username": "bob", "password": PASSWORD},
               allow_redirects=False, timeout=60)
    assert r.status_code == 429


def test_session_cookie_csp_and_csrf(console):
    s = console.session("alice")
    cookie = [c for c in s.cookies if c.name == "imaged_console"][0]
    assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
    raw = requests.Session()
    page = raw.get(console.url + "/console/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    login = raw.post(console.url + "/console/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD},
                     allow_redirects=False, timeout=60)
    set_cookie = login.headers["Set-Cookie"]
    assert "imaged_console=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here; test_console_tls checks Secure behind TLS

    listing = s.get(console.url + "/console/images", timeout=30)
    assert listing.status_code == 200 and listing.headers["Content-Type"].startswith("text/html")
    csp = listing.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and listing.headers["X-Frame-Options"] == "DENY"
    assert listing.headers["X-Content-Type-Options"] == "nosniff" and listing.headers["Cache-Control"] == "no-store"
    assert "<script>" not in listing.text and " on" + "click=" not in listing.text
    token = re.search(r'name="csrf" value="([^"]+)"', listing.text).group(1)

    # A cross-site form post (no token, or another site's Origin) is refused and changes nothing.
    forged = s.post(console.url + "/console/logout", data={}, allow_redirects=False, timeout=30)
    assert forged.status_code == 403 and "CSRF" in forged.text
    wrong = s.post(console.url + "/console/logout", data={"csrf": token[:-2] + "xx"}, allow_redirects=False, timeout=30)
    assert wrong.status_code == 403
    other_site = s.post(console.url + "/console/logout", data={"csrf": token}, headers={"Origin": "http://evil.example"},
                        allow_redirects=False, timeout=30)
    assert other_site.status_code == 403
    assert s.get(console.url + "/console/images", allow_redirects=False, timeout=30).status_code == 200  # still logged in
    login_forged = requests.post(console.url + "/console/login", data={"csrf": "x" * 32, "username": "alice", "password": PASSWORD},
                                 allow_redirects=False, timeout=30)
    assert login_forged.status_code == 403 and "imaged_console=" not in login_forged.headers.get("Set-Cookie", "")

    # Logging out ends the session on the server: the old cookie opens nothing.
    old = s.cookies.get("imaged_console")
    out = s.post(console.url + "/console/logout", data={"csrf": token}, allow_redirects=False, timeout=30)
    assert out.status_code == 303 and out.headers["Location"] == "/console/login"
    again = requests.get(console.url + "/console/images", cookies={"imaged_console": old}, allow_redirects=False, timeout=30)
    assert again.status_code == 303 and again.headers["Location"].startswith("/console/login")

    # A login never redirects off the console.
    page = raw.get(console.url + "/console/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    for target in ["https://evil.example/", "//evil.example/console/", "/console/\\\\evil"]:
        r = raw.post(console.url + "/console/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD, "next": target},
                     allow_redirects=False, timeout=60)
        assert r.status_code == 303 and r.headers["Location"] == "/console/images", target
        page = raw.get(console.url + "/console/login", timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    # Static files: the stylesheet and the script, cached for an hour, nothing else.
    css = requests.get(console.url + "/console/static/console.css", timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css") and "max-age=3600" in css.headers["Cache-Control"]
    for name in ["nope.js", "..%2f..%2fsecret.key", "%2e%2e/tokens.json"]:
        r = requests.get(console.url + "/console/static/" + name, timeout=30)
        assert r.status_code == 404 and r.text == "no such file\n", name


def test_create_edit_share_accept_and_delete_through_the_pages(console, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tag = unique("edit")
    log_in(browser, console, "alice")
    click_and_wait(browser, browser.find_element(By.ID, "new-image"))
    browser.find_element(By.ID, "new-name").send_keys(f"made-in-console-{tag}")
    Select(browser.find_element(By.ID, "new-disk-format")).select_by_value("raw")
    click_and_wait(browser, browser.find_element(By.ID, "create"))
    assert "Image created." in browser.find_element(By.CSS_SELECTOR, "p.message.ok").text
    image_id = browser.current_url.split("/console/images/")[1].split("?")[0]
    made = console.api("alice", "GET", f"/v2/images/{image_id}").json()
    assert (made["name"], made["disk_format"], made["container_format"], made["owner"], made["status"]) == \
        (f"made-in-console-{tag}", "raw", "bare", "p-alice", "queued")

    # Edit: name, tags, protected; a property set, then removed.
    name = browser.find_element(By.ID, "edit-name")
    name.clear()
    name.send_keys(f"renamed <i>{tag}</i>")
    tags = browser.find_element(By.ID, "edit-tags")
    tags.clear()
    tags.send_keys(f"{tag}, web, web, db")
    browser.find_element(By.ID, "edit-protected").click()
    click_and_wait(browser, browser.find_element(By.ID, "save"))
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Saved."
    assert browser.find_element(By.ID, "image-name").text == f"renamed <i>{tag}</i>"
    got = console.api("alice", "GET", f"/v2/images/{image_id}").json()
    assert got["name"] == f"renamed <i>{tag}</i>" and sorted(got["tags"]) == sorted([tag, "web", "db"]) and got["protected"] is True
    browser.find_element(By.ID, "property-key").send_keys("os_distro")
    browser.find_element(By.ID, "property-value").send_keys("ubuntu")
    click_and_wait(browser, browser.find_element(By.ID, "property-save"))
    assert console.api("alice", "GET", f"/v2/images/{image_id}").json()["os_distro"] == "ubuntu"
    shot(browser, "console-image-edit")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[aria-label='Remove os_distro']"))
    assert "os_distro" not in console.api("alice", "GET", f"/v2/images/{image_id}").json()

    # Deleting a protected image is refused, and the page says why; nothing changes.
    browser.execute_script("window.confirm = () => true")
    click_and_wait(browser, browser.find_element(By.ID, "action-delete"))
    assert "protected" in browser.find_element(By.CSS_SELECTOR, "p.message.error").text.lower()
    assert console.api("alice", "GET", f"/v2/images/{image_id}").status_code == 200

    # Share with bob's project (visibility is shared by default); bob sees it pending, accepts, then lists it.
    browser.find_element(By.ID, "member-id").send_keys("p-bob")
    click_and_wait(browser, browser.find_element(By.ID, "share"))
    assert [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#members td.member-status")] == ["pending"]
    members = console.api("alice", "GET", f"/v2/images/{image_id}/members").json()["members"]
    assert [(m["member_id"], m["status"]) for m in members] == [("p-bob", "pending")]
    log_in(browser, console, "bob", next_path=f"/console/images/{image_id}")
    assert browser.find_element(By.ID, "my-member-status").text == "pending"
    assert not browser.find_elements(By.ID, "edit") and not browser.find_elements(By.ID, "action-delete")
    click_and_wait(browser, browser.find_element(By.ID, "accept"))
    assert browser.find_element(By.ID, "my-member-status").text == "accepted"
    browser.get(console.url + f"/console/images?tag={tag}")
    assert [r[0] for r in rows(browser)] == [f"renamed <i>{tag}</i>"]
    assert console.api("bob", "GET", f"/v2/images?member_status=accepted&tag={tag}").json()["images"][0]["id"] == image_id

    # alice unprotects and deletes it: gone from the catalog and from bob's list.
    log_in(browser, console, "alice", next_path=f"/console/images/{image_id}")
    browser.find_element(By.ID, "edit-protected").click()
    click_and_wait(browser, browser.find_element(By.ID, "save"))
    browser.execute_script("window.confirm = () => true")
    click_and_wait(browser, browser.find_element(By.ID, "action-delete"))
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Image deleted."
    assert console.api("alice", "GET", f"/v2/images/{image_id}").status_code == 404


def test_a_reader_who_forges_a_change_gets_403_and_nothing_changes(console):
    image = console.create("alice", name=unique("ro"))
    rita = console.session("rita")
    page = rita.get(console.url + f"/console/images/{image['id']}", timeout=30)
    assert page.status_code == 200 and 'id="edit"' not in page.text and 'id="action-delete"' not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    for action, data in [("edit", {"name": "hijacked"}), ("delete", {}), ("property", {"key": "x", "value": "y"}),
                         ("members", {"member": "p-evil"})]:
        r = rita.post(console.url + f"/console/images/{image['id']}/{action}", data={"csrf": token, **data},
                      allow_redirects=False, timeout=30)
        assert r.status_code == 403, (action, r.status_code)
        assert 'class="message error"' in r.text
    after = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert after["name"] == image["name"] and "x" not in after and after["updated_at"] == image["updated_at"]
    assert console.api("alice", "GET", f"/v2/images/{image['id']}/members").json()["members"] == []


def start_throttled_upload(browser, path):
    """Chooses `path` in the upload panel and starts it with uploads throttled to ~12 MiB/s (a few seconds)."""
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                            "downloadThroughput": -1, "uploadThroughput": 12 << 20})
    browser.find_element(By.ID, "upload-file").send_keys(str(path))
    browser.find_element(By.ID, "upload-start").click()


def test_browser_upload_shows_progress_survives_a_dropped_connection_and_stores_the_right_bytes(console, browser, disk):
    """A real qcow2 through the page: the bar climbs, the network drops mid-upload (Chromium offline), the page
    continues from the server's offset, and the image ends active with the file's sha512."""
    import hashlib
    import time
    from selenium.webdriver.common.by import By

    src = disk.raw_with_data("console-upload.src.raw", virtual=96 << 20, data=40 << 20, seed=11)
    path = disk._once("console-upload.qcow2", lambda p: subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(p)], check=True))
    data = path.read_bytes()
    image = console.create("alice", name=unique("upload"), disk_format="qcow2")
    log_in(browser, console, "alice", next_path=f"/console/images/{image['id']}")
    # ~12 MiB/s: the upload takes a few seconds, long enough to watch and to cut.
    start_throttled_upload(browser, path)
    bar = browser.find_element(By.ID, "upload-progress")
    seen = []
    deadline = time.time() + 60
    while time.time() < deadline:
        value = float(bar.get_attribute("value") or 0)
        seen.append(value)
        if value > len(data) * 0.3:
            break
        time.sleep(0.05)
    assert seen[-1] > len(data) * 0.3, seen[-5:]
    climbing = [v for v in seen if 0 < v < len(data)]
    assert len(set(climbing)) >= 3, "the progress bar did not climb in steps"
    assert "MiB/s" in browser.find_element(By.ID, "upload-status").text
    shot(browser, "console-upload")
    # The connection drops for two seconds.
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                            "downloadThroughput": -1, "uploadThroughput": -1})
    wait_page(browser, lambda b: "retrying" in b.find_element(By.ID, "upload-status").text, timeout=30)
    assert int(browser.find_element(By.ID, "upload").get_attribute("data-retries")) >= 1
    time.sleep(2)
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                            "downloadThroughput": -1, "uploadThroughput": -1})
    wait_page(browser, lambda b: "done=uploaded" in b.current_url, timeout=120)
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Upload complete."
    got = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert got["status"] == "active" and got["size"] == len(data)
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest() and got["checksum"] == hashlib.md5(data).hexdigest()
    assert got["os_hash_value"] in browser.find_element(By.TAG_NAME, "main").text
    downloaded = console.api("alice", "GET", f"/v2/images/{image['id']}/file")
    assert hashlib.sha512(downloaded.content).hexdigest() == hashlib.sha512(data).hexdigest()


def test_a_reloaded_tab_resumes_the_upload_where_the_server_stopped(console, browser, disk):
    import hashlib
    import time
    from selenium.webdriver.common.by import By

    path = disk.raw_with_data("console-reload.raw", virtual=48 << 20, data=48 << 20, seed=12)
    data = path.read_bytes()
    image = console.create("alice", name=unique("reload"), disk_format="raw")
    log_in(browser, console, "alice", next_path=f"/console/images/{image['id']}")
    start_throttled_upload(browser, path)
    # Reload once the server has acknowledged at least one 16 MiB piece (HEAD says so).
    def acknowledged():
        sessions = console.api("alice", "GET", f"/v2/images/{image['id']}/uploads").json()["uploads"]
        return sessions and sessions[0]["offset"] >= 16 << 20
    deadline = time.time() + 60
    while not acknowledged() and time.time() < deadline:
        time.sleep(0.1)
    kept = console.api("alice", "GET", f"/v2/images/{image['id']}/uploads").json()["uploads"][0]["offset"]
    assert 16 << 20 <= kept < len(data)
    browser.refresh()
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                            "downloadThroughput": -1, "uploadThroughput": -1})
    # The page still offers the upload (the image is saving, its session open); the same file continues it.
    browser.find_element(By.ID, "upload-file").send_keys(str(path))
    browser.find_element(By.ID, "upload-start").click()
    wait_page(browser, lambda b: "done=uploaded" in b.current_url or "Resuming" in b.find_element(By.ID, "upload-status").text, timeout=30)
    wait_page(browser, lambda b: "done=uploaded" in b.current_url, timeout=120)
    got = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert got["status"] == "active" and got["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_import_from_a_url_shows_live_progress_and_ends_active_with_the_right_digests(console, browser, origin, disk):
    """web-download from the page: the task row's bar climbs while a slow origin sends a real qcow2, then the page
    shows the image active; its digests are the file's, through the API too."""
    import hashlib
    import time
    from selenium.webdriver.common.by import By

    src = disk.raw_with_data("console-import.src.raw", virtual=64 << 20, data=24 << 20, seed=21)
    path = disk._once("console-import.qcow2", lambda p: subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(p)], check=True))
    data = path.read_bytes()
    # About 6 s end to end: 1 MiB every 0.25 s.
    url = origin.slow(f"/{unique('console-import')}.qcow2", data, chunk=1 << 20, delay=0.25)
    image = console.create("alice", name=unique("import"), disk_format="qcow2")
    log_in(browser, console, "alice", next_path=f"/console/images/{image['id']}")
    browser.find_element(By.ID, "import-url").send_keys(url)
    click_and_wait(browser, browser.find_element(By.ID, "import-start"))
    assert "done=import-started" in browser.current_url
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text.startswith("Import started")
    tasks = console.api("alice", "GET", f"/v2/images/{image['id']}/tasks").json()["tasks"]
    assert len(tasks) == 1 and tasks[0]["type"] == "api_image_import"
    row = browser.find_element(By.ID, f"task-{tasks[0]['id']}")
    assert row.get_attribute("data-task") == tasks[0]["id"]
    seen = []
    deadline = time.time() + 60
    while time.time() < deadline and "#tasks" not in browser.current_url:
        try:
            seen.append(int(browser.find_element(By.CSS_SELECTOR, f"#task-{tasks[0]['id']}").get_attribute("data-bytes-done") or 0))
        except Exception:
            break  # the page is being reloaded: the import ended
        if 0 < seen[-1] < len(data) and seen.count(seen[-1]) == 1 and len(set(seen)) == 3:
            browser.execute_script("document.getElementById('tasks').scrollIntoView()")
            shot(browser, "console-import")  # mid-import, the bar part-filled
        time.sleep(0.2)
    climbing = sorted({v for v in seen if 0 < v < len(data)})
    assert len(climbing) >= 2, f"the task's bytes did not climb on the page: {seen}"
    assert climbing == sorted(climbing)
    wait_page(browser, lambda b: b.current_url.endswith("#tasks"), timeout=60)
    got = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert got["status"] == "active" and got["size"] == len(data)
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest() and got["checksum"] == hashlib.md5(data).hexdigest()
    page = browser.find_element(By.TAG_NAME, "main").text
    assert got["os_hash_value"] in page and "success" in browser.find_element(By.ID, f"task-{tasks[0]['id']}").text
    assert browser.find_elements(By.ID, "import") == []  # an active image offers no import


def test_cancel_an_import_gives_the_image_back_and_a_new_import_works(console, browser, origin):
    import time
    from selenium.webdriver.common.by import By

    # 64 MiB, 1 MiB every 0.2 s; the route notes when imaged hangs up.
    block, sent = b"c" * (1 << 20), {"bytes": 0, "hung_up": False}

    def slow_until_hung_up(h):
        h.send_response(200)
        h.send_header("Content-Length", str(64 * len(block)))
        h.end_headers()
        try:
            for _ in range(64):
                h.wfile.write(block)
                h.wfile.flush()
                sent["bytes"] += len(block)
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            sent["hung_up"] = True
    path = f"/{unique('cancel')}.raw"
    origin.routes[path] = slow_until_hung_up
    image = console.create("alice", name=unique("cancel"), disk_format="raw")
    log_in(browser, console, "alice", next_path=f"/console/images/{image['id']}")
    browser.find_element(By.ID, "import-url").send_keys(origin.url(path))
    click_and_wait(browser, browser.find_element(By.ID, "import-start"))
    task = console.api("alice", "GET", f"/v2/images/{image['id']}/tasks").json()["tasks"][0]
    # The bar shows bytes arriving before the cancel.
    wait_page(browser, lambda b: int(b.find_element(By.ID, f"task-{task['id']}").get_attribute("data-bytes-done") or 0) > 0, timeout=30)
    # A reader of the project sees no cancel button, and a forged cancel is refused with nothing changed.
    rita = console.session("rita")
    page = rita.get(console.url + f"/console/images/{image['id']}", timeout=30)
    assert f'id="cancel-{task["id"]}"' not in page.text and 'id="import"' not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = rita.post(console.url + f"/console/images/{image['id']}/tasks/{task['id']}/cancel", data={"csrf": token},
                  allow_redirects=False, timeout=30)
    assert r.status_code == 403
    assert console.task("alice", image["id"], task["id"])["status"] == "processing"
    # Another project cannot even see the task.
    bob = console.session("bob")
    page = bob.get(console.url + "/console/images", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = bob.post(console.url + f"/console/images/{image['id']}/tasks/{task['id']}/cancel", data={"csrf": token},
                 allow_redirects=False, timeout=30)
    assert r.status_code == 404
    assert bob.get(console.url + f"/console/tasks/{task['id']}", timeout=30).status_code == 404
    # Through another image's page, the task is not found and goes on.
    other = console.create("alice", name=unique("other"))
    alice = console.session("alice")
    token = re.search(r'name="csrf" value="([^"]+)"', alice.get(console.url + "/console/images", timeout=30).text).group(1)
    r = alice.post(console.url + f"/console/images/{other['id']}/tasks/{task['id']}/cancel", data={"csrf": token},
                   allow_redirects=False, timeout=30)
    assert r.status_code == 404
    assert console.task("alice", image["id"], task["id"])["status"] == "processing"

    browser.find_element(By.ID, f"cancel-{task['id']}").click()
    browser.switch_to.alert.accept()
    wait_page(browser, lambda b: "done=task-cancelled" in b.current_url)
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Task cancelled."
    assert "cancelled" in browser.find_element(By.ID, f"task-{task['id']}").text
    got = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert got["status"] == "queued" and not got.get("os_glance_import_task")
    t = console.task("alice", image["id"], task["id"])
    assert t["status"] == "failure" and t["message"] == "Cancelled by alice."
    # The run stops fetching: imaged hangs up on the origin within a few seconds, long before the end.
    deadline = time.time() + 15
    while not sent["hung_up"] and time.time() < deadline:
        time.sleep(0.1)
    assert sent["hung_up"] and sent["bytes"] < 64 * len(block), sent
    # The image takes a new import at once, which ends active (the cancelled run publishes nothing).
    small = origin.serve(f"/{unique('small')}.raw", b"x" * (3 << 20))
    r = console.api("alice", "POST", f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": small}})
    assert r.status_code == 202, r.text
    deadline = time.time() + 60
    while time.time() < deadline and console.api("alice", "GET", f"/v2/images/{image['id']}").json()["status"] != "active":
        time.sleep(0.3)
    got = console.api("alice", "GET", f"/v2/images/{image['id']}").json()
    assert got["status"] == "active" and got["size"] == 3 << 20
    # A finished task has no cancel button, and cancelling it anyway is a conflict shown on the page.
    s = console.session("alice")
    page = s.get(console.url + f"/console/images/{image['id']}", timeout=30)
    assert f'id="cancel-' not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(console.url + f"/console/images/{image['id']}/tasks/{task['id']}/cancel", data={"csrf": token},
               allow_redirects=False, timeout=30)
    assert r.status_code == 409 and "already finished" in r.text


def test_an_import_from_a_refused_url_is_a_message_on_the_page(console, browser):
    from selenium.webdriver.common.by import By

    image = console.create("alice", name=unique("refused"), disk_format="raw")
    log_in(browser, console, "alice", next_path=f"/console/images/{image['id']}")
    browser.find_element(By.ID, "import-url").send_keys("http://169.254.169.254/latest/meta-data/")
    click_and_wait(browser, browser.find_element(By.ID, "import-start"))
    message = browser.find_element(By.CSS_SELECTOR, "p.message.error").text
    assert "169.254.169.254" in message or "not allowed" in message.lower(), message
    assert console.api("alice", "GET", f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert console.api("alice", "GET", f"/v2/images/{image['id']}/tasks").json()["tasks"] == []


def test_usage_page_shows_quota_bars_charts_the_task_queue_and_failures(console, browser, disk):
    from selenium.webdriver.common.by import By

    # Stored data in two formats for alice's project (a real qcow2, smaller than the raw), one image for bob's.
    for fmt, data in [("raw", b"u" * (5 << 20)), ("qcow2", disk.qcow2("usage.qcow2", seed=31).read_bytes())]:
        image = console.create("alice", name=unique("usage"), disk_format=fmt)
        console.upload("alice", image["id"], data)
    bob_image = console.create("bob", name=unique("bob-usage"))
    console.upload("bob", bob_image["id"], b"b" * (1 << 20))
    usage = console.api("alice", "GET", "/v2/info/usage").json()["usage"]

    log_in(browser, console, "alice", next_path="/console/usage")
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Usage"
    rows = browser.find_elements(By.CSS_SELECTOR, "table.quotas tbody tr")
    assert [r.get_attribute("data-project") for r in rows] == ["p-alice"]  # a member sees their project only
    meters = rows[0].find_elements(By.TAG_NAME, "meter")
    assert len(meters) == 2  # images and stored bytes have limits; staged and uploads do not
    assert int(float(meters[0].get_attribute("value"))) == usage["image_count_total"]["usage"]
    assert int(float(meters[0].get_attribute("max"))) == 1000
    # The API gives MiB (Glance's unit), rounded up; the page the bytes.
    assert -(-int(float(meters[1].get_attribute("value"))) // (1 << 20)) == usage["image_size_total"]["usage"]
    assert int(float(meters[1].get_attribute("max"))) == 20 << 30
    assert "of 20 GiB" in rows[0].text and "no limit" in rows[0].text
    # The charts are inline SVG drawn by the server, one bar per format / store, the largest first.
    formats = browser.find_element(By.ID, "chart-formats")
    labels = [t.text for t in formats.find_elements(By.CSS_SELECTOR, "svg text.label")]
    expected = {}
    for i in console.api("alice", "GET", "/v2/images?owner=p-alice&limit=1000").json()["images"]:
        if i["status"] in ("active", "deactivated"):
            expected[i["disk_format"]] = expected.get(i["disk_format"], 0) + i["size"]
    assert labels == sorted(expected, key=lambda f: -expected[f])
    widths = [float(r.get_attribute("width")) for r in formats.find_elements(By.CSS_SELECTOR, "svg rect")]
    for label, width in zip(labels, widths):  # bars in proportion to the bytes, the largest full length
        assert abs(width - widths[0] * expected[label] / expected[labels[0]]) <= 1
    # One store (the default data directory's, id "file"): every stored byte is in it.
    assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chart-stores svg text.label")] == ["file"]
    assert browser.find_element(By.CSS_SELECTOR, "#chart-stores svg text.value").text == \
        browser.find_element(By.CSS_SELECTOR, "table.quotas tbody tr td:nth-of-type(2) .figure").text.split(" of ")[0]
    assert browser.find_elements(By.ID, "chart-projects") == [] and browser.find_elements(By.ID, "readiness") == []
    # The cancelled import of the test before is among the recent failures, marked as cancelled.
    assert "cancelled" in browser.find_element(By.ID, "failures").text
    shot(browser, "console-usage")

    # An admin sees every project, the bytes per project and this node's readiness.
    log_in(browser, console, "root", next_path="/console/usage")
    projects = [r.get_attribute("data-project") for r in browser.find_elements(By.CSS_SELECTOR, "table.quotas tbody tr")]
    assert "p-alice" in projects and "p-bob" in projects
    project_labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chart-projects svg text.label")]
    assert "p-alice" in project_labels and "p-bob" in project_labels
    assert browser.find_element(By.ID, "ready-status").text == "ready"
    assert "catalog" in browser.find_element(By.ID, "readiness").text
    shot(browser, "console-usage-admin")


def test_admin_pages_manage_accounts_api_keys_and_quotas(console, browser):
    from selenium.webdriver.common.by import By

    # A member has no Admin link, and the page and its forms are refused.
    alice = console.session("alice")
    page = alice.get(console.url + "/console/images", timeout=30)
    assert 'href="/console/admin"' not in page.text
    assert alice.get(console.url + "/console/admin", timeout=30).status_code == 403
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = alice.post(console.url + "/console/admin/accounts", data={"csrf": token, "name": "mallory", "project": "p-alice", "role": "admin",
                                                                  "password": "Mallory-pw-123"}, allow_redirects=False, timeout=30)
    assert r.status_code == 403
    assert "mallory" not in imaged("account", "list", "--data-dir", str(console.srv.data_dir))

    # An admin creates an account, which can then log in.
    name, project, password = unique("carol").replace("-", "_"), unique("p-carol"), "Carol-" + unique("pw")
    log_in(browser, console, "root", next_path="/console/admin")
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Admin"
    browser.find_element(By.ID, "account-name").send_keys(name)
    browser.find_element(By.ID, "account-project").send_keys(project)
    browser.find_element(By.ID, "account-password").send_keys(password)
    click_and_wait(browser, browser.find_element(By.ID, "account-create"))
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Account created."
    row = browser.find_element(By.ID, f"account-{name}")
    assert project in row.text and "member" in row.text
    listed = imaged("account", "list", "--data-dir", str(console.srv.data_dir))
    assert re.search(rf"^{name}\tproject={project}\troles=member\tpassword=yes\tkeys=\t", listed, re.M), listed
    carol = requests.Session()
    login = carol.get(console.url + "/console/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    r = carol.post(console.url + "/console/login", data={"csrf": csrf, "username": name, "password": password}, allow_redirects=False, timeout=60)
    assert r.status_code == 303
    assert carol.get(console.url + "/console/images", timeout=30).status_code == 200

    # A new API key: its secret is on the answer to the POST, works against the API, and is never shown again.
    click_and_wait(browser, browser.find_element(By.ID, f"new-key-{name}"))
    key_id = browser.find_element(By.ID, "new-key-id").text
    secret = browser.find_element(By.ID, "new-key-secret").text
    assert key_id.startswith("imk_") and len(secret) >= 40
    assert browser.find_element(By.ID, "new-key-token").text == f"X-Auth-Token: {key_id}:{secret}"
    shot(browser, "console-admin")
    api = lambda method, path, **kw: requests.request(method, console.url + path, headers={"X-Auth-Token": f"{key_id}:{secret}"}, timeout=30, **kw)
    assert api("GET", "/v2/images").status_code == 200
    browser.get(console.url + "/console/admin")
    assert secret not in browser.page_source and browser.find_elements(By.ID, "new-key-secret") == []
    assert key_id in browser.find_element(By.ID, f"account-{name}").text

    # Quotas: one image at most for the new project; clearing the limit lets it grow again.
    browser.find_element(By.ID, "quota-project").send_keys(project)
    browser.find_element(By.ID, "quota-image_count_total").send_keys("1")
    browser.find_element(By.ID, "quota-image_size_total").send_keys("1GiB")
    click_and_wait(browser, browser.find_element(By.ID, "quota-save"))
    assert browser.find_element(By.CSS_SELECTOR, "p.message.ok").text == "Limits saved."
    quota_row = browser.find_element(By.CSS_SELECTOR, f"tr[data-project='{project}']")
    assert "1 GiB" in quota_row.text and "default" in quota_row.text
    body = {"disk_format": "raw", "container_format": "bare"}
    assert api("POST", "/v2/images", json={**body, "name": "first"}).status_code == 201
    over = api("POST", "/v2/images", json={**body, "name": "second"})
    assert over.status_code == 413 and "image_count_total" in over.text
    assert api("GET", "/v2/info/usage").json()["usage"]["image_count_total"]["limit"] == 1
    # A bad value is refused on the page with nothing saved.
    browser.find_element(By.ID, "quota-project").send_keys(project)
    browser.find_element(By.ID, "quota-image_size_total").send_keys("lots")
    click_and_wait(browser, browser.find_element(By.ID, "quota-save"))
    assert "'lots' is not a valid image_size_total" in browser.find_element(By.CSS_SELECTOR, "p.message.error").text
    assert api("GET", "/v2/info/usage").json()["usage"]["image_count_total"]["limit"] == 1
    browser.find_element(By.ID, f"clear-quota-{project}").click()
    browser.switch_to.alert.accept()
    wait_page(browser, lambda b: "done=quota-cleared" in b.current_url)
    assert browser.find_elements(By.CSS_SELECTOR, f"tr[data-project='{project}']") == []
    assert api("POST", "/v2/images", json={**body, "name": "second"}).status_code == 201

    # Revoking the key locks it out; deleting the account ends its console session too.
    browser.find_element(By.ID, f"revoke-{key_id}").click()
    browser.switch_to.alert.accept()
    wait_page(browser, lambda b: "done=key-deleted" in b.current_url)
    assert api("GET", "/v2/images").status_code == 401
    browser.find_element(By.ID, f"delete-account-{name}").click()
    browser.switch_to.alert.accept()
    wait_page(browser, lambda b: "done=account-deleted" in b.current_url)
    assert browser.find_elements(By.ID, f"account-{name}") == []
    r = carol.get(console.url + "/console/images", allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"].startswith("/console/login")
    # An admin cannot delete their own account from the page.
    assert browser.find_elements(By.ID, "delete-account-root") == []

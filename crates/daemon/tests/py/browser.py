#!/usr/bin/env python3
"""The web page in a real browser: headless Chromium driven over WebDriver
(Debian's chromium, chromium-driver and python3-selenium), each session a
fresh profile, against a running twofactord with test accounts.

Started by crates/daemon/tests/e2e/browser.rs, which passes (environment):
  TFA_URL        http://127.0.0.1:PORT (the daemon's TCP listener)
  TFA_HTTPS_URL  https://localhost:PORT of a second daemon with a test certificate
  TFA_SOCKET     the daemon's Unix socket (root's API calls, from this script)
  TFA_CLI        the `tfa` binary (its audit table is what the page's matches)
  TFA_ARTEFACTS  where screenshots, downloads and figures go
  TFA_AXE        axe-core's axe.min.js
  TFA_ACCOUNTS   JSON: {"admin": [name, pw], "alice": [...], "bob": [...],
                 "plain": [...], "xss": [...]}
It asks its parent to restart the daemon by printing `RESTART` and waiting
for a line on standard input. Prints one line per check; exits 0 when every
check passed.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client
from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["TFA_URL"]
HTTPS_URL = os.environ.get("TFA_HTTPS_URL")
SOCKET = os.environ["TFA_SOCKET"]
CLI = os.environ["TFA_CLI"]
ART = os.path.realpath(os.environ["TFA_ARTEFACTS"])
AXE = open(os.environ["TFA_AXE"], encoding="utf-8").read()
ACC = json.loads(os.environ["TFA_ACCOUNTS"])
WAIT = 15
TOKEN_KEY = "twofactor.token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

os.makedirs(ART, exist_ok=True)
DOWNLOADS = os.path.join(ART, "downloads")
os.makedirs(DOWNLOADS, exist_ok=True)
FIGURES = {}
drivers = []


def fail(msg):
    print("FAIL:", msg, flush=True)
    try:
        for row in root().call("audit.query", {"limit": 8}):
            print("audit:", json.dumps(row), flush=True)
    except Exception as e:  # noqa: BLE001 - diagnostics only
        print("no audit:", e, flush=True)
    for d in drivers:
        try:
            d.save_screenshot(os.path.join(ART, "failure-%d.png" % drivers.index(d)))
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
    sys.exit(1)


def ok(msg):
    print("ok:", msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    ok(msg)


# --- the API as root over the Unix socket, and raw TCP clients ---------------

class Api:
    def __init__(self, ws):
        self.ws = ws
        self.id = 0

    def call(self, method, *params):
        self.id += 1
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method, "params": list(params)}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.id:
                if "error" in msg:
                    raise RuntimeError(json.dumps(msg["error"]))
                return msg["result"]


def root():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.connect(SOCKET)
    return Api(websocket.create_connection("ws://localhost/api/current", socket=s, timeout=WAIT))


def tcp(source="127.0.0.1", origin=None):
    host, port = URL.split("//")[1].split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.bind((source, 0))
    s.connect((host, int(port)))
    kw = {"socket": s, "timeout": WAIT}
    if origin:
        kw["origin"] = origin
    return Api(websocket.create_connection("ws://%s:%s/api/current" % (host, port), **kw))


# --- codes ---------------------------------------------------------------------

last_step = {}


def fresh_code(secret, interval, digits=6):
    """A code of a step above the last one used for this secret, within the
    window of 1 (the current or the next step); waits for the clock when
    both are used."""
    while True:
        now = int(time.time()) // interval
        # The current step or the next: a code of the previous one could
        # fall out of the window before the server checks it.
        step = max(now, last_step.get(secret, -1) + 1)
        if step <= now + 1:
            break
        # Both are used: the next step starts at a known instant of the
        # clock (the daemon's is the same real clock); wait for that, once.
        time.sleep(max(0.0, (step - 1) * interval - time.time()) + 0.01)
    last_step[secret] = step
    out = subprocess.run(
        ["oathtool", "--totp", "-b", "-d", str(digits), "-s", "%ds" % interval,
         "-N", "@%d" % (step * interval), secret],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wrong_code(secret, interval):
    now = int(time.time()) // interval
    codes = set()
    for step in (now - 1, now, now + 1):
        out = subprocess.run(["oathtool", "--totp", "-b", "-s", "%ds" % interval,
                              "-N", "@%d" % (step * interval), secret],
                             check=True, capture_output=True, text=True)
        codes.add(out.stdout.strip())
    for d in "0123456789":
        if d * 6 not in codes:
            return d * 6
    fail("no wrong code")
    return None


def uri_secret(uri):
    return re.search(r"[?&]secret=([A-Z2-7]+)", uri).group(1)


# --- the browser ---------------------------------------------------------------

CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
window.__alerts = 0;
window.__shift = 0;
try {
  new PerformanceObserver(function (list) {
    for (const e of list.getEntries()) { window.__shift += e.value; }
  }).observe({type: 'layout-shift', buffered: true});
} catch (e) {}
"""


def browser(width=1280, height=900, insecure_certs=False):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="tfa-chromium-")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions", "--window-size=%d,%d" % (width, height),
              "--user-data-dir=" + profile, "--lang=en-US"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if insecure_certs:
        o.set_capability("acceptInsecureCerts", True)
    o.add_experimental_option("prefs", {
        "download.default_directory": DOWNLOADS,
        "download.prompt_for_download": False,
        "download.directory_upgrade": True,
        "safebrowsing.enabled": False,
    })
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": DOWNLOADS})
    drivers.append(d)
    return d


def wait(d, cond, what):
    try:
        # A table redrawn by a live update between finding a row and reading
        # it leaves a stale element: that is "not yet", and the wait goes on.
        return WebDriverWait(d, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda drv: cond(drv))
    except TimeoutException:
        fail("timed out waiting for " + what + "; page: " + d.find_element(By.ID, "main").text[:500])
    return None


def by_id(d, i):
    return d.find_element(By.ID, i)


def visible(d, i):
    els = d.find_elements(By.ID, i)
    return els[0] if els and els[0].is_displayed() else None


def message(d, i):
    return by_id(d, i).text.strip()


def wait_message(d, i, pattern, what):
    return wait(d, lambda drv: re.search(pattern, message(drv, i)) and message(drv, i), what)


def open_page(d, base=URL):
    d.get(base + "/")
    wait(d, lambda drv: visible(drv, "signin-title") or visible(drv, "mine-title"), "the first page")


def sign_in_password(d, user, password):
    u = wait(d, lambda drv: visible(drv, "signin") and drv.find_element(By.NAME, "username"), "sign-in form")
    u.clear()
    u.send_keys(user)
    p = d.find_element(By.NAME, "password")
    p.clear()
    p.send_keys(password)
    d.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()


def enter_code(d, code):
    c = wait(d, lambda drv: drv.find_element(By.NAME, "code").is_displayed() and drv.find_element(By.NAME, "code"),
             "the code field")
    c.clear()
    c.send_keys(code)
    buttons = [b for b in d.find_elements(By.CSS_SELECTOR, "#signin button[type=submit]") if b.is_displayed()]
    buttons[0].click()


def on_mine(d, user):
    wait(d, lambda drv: visible(drv, "mine-title") and by_id(drv, "who-name").text == user,
         "My two-factor for " + user)


def sign_in(d, user, password, code=None):
    sign_in_password(d, user, password)
    if code is not None:
        enter_code(d, code)
    on_mine(d, user)


def sign_out(d):
    by_id(d, "signout").click()
    wait(d, lambda drv: visible(drv, "signin-title"), "the sign-in page after signing out")


def go(d, page, title_id):
    d.execute_script("location.hash = arguments[0]", "#/" + page)
    wait(d, lambda drv: visible(drv, title_id), page)


def token_of(d):
    return d.execute_script("return sessionStorage.getItem(arguments[0])", TOKEN_KEY)


def token_login(token, source="127.0.0.1"):
    c = tcp(source)
    r = c.call("auth.login_ex", {"mechanism": "TOKEN_PLAIN", "token": token})
    c.ws.close()
    return r["response_type"]


def csp_clean(d, where):
    violations = d.execute_script("return window.__csp || []")
    logged = [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]
              or "Content-Security-Policy" in e["message"]]
    if violations or logged:
        fail("CSP violations on %s: %r %r" % (where, violations, logged))


AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  r => done(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))),
  e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));
"""

axe_pages = []


def axe(d, where):
    d.execute_script(AXE)
    d.set_script_timeout(60)
    found = d.execute_async_script(AXE_RUN)
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    if bad:
        fail("axe-core on %s: %s" % (where, json.dumps(bad)))
    axe_pages.append(where)
    minor = ", ".join("%s(%s)" % (v["id"], v["impact"]) for v in found)
    ok("axe-core: no serious or critical violation on %s%s" % (where, "; minor: " + minor if minor else ""))


def shots(d, name):
    """Screenshots at 1280 px and 360 px, light and dark."""
    for scheme in ("light", "dark"):
        d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                          {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        for width, height in ((1280, 900), (360, 780)):
            d.set_window_size(width, height)
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
            d.execute_script("window.scrollTo(0, 0)")
            scroll_width = d.execute_script("return document.documentElement.scrollWidth")
            if scroll_width > width + 1:
                fail("%s at %d px scrolls sideways (%d px wide)" % (name, width, scroll_width))
            d.save_screenshot(os.path.join(ART, "%s-%d-%s.png" % (name, width, scheme)))
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    d.set_window_size(1280, 900)


# For each audit detail cell: the words (runs of non-space) whose first and
# last characters are on different lines, and how many cells take more than
# one line.
DETAIL_WRAPPING = """
const broken = [];
let wrapped = 0;
const range = document.createRange();
for (const td of document.querySelectorAll('#audit td.detail')) {
  const text = td.firstChild;
  if (!text || text.nodeType !== Node.TEXT_NODE || !text.data) continue;
  const top = (i) => {
    range.setStart(text, i);
    range.setEnd(text, i + 1);
    const r = range.getClientRects()[0];
    return r ? r.top : null;
  };
  if (Math.abs(top(0) - top(text.data.length - 1)) > 1) wrapped += 1;
  for (const m of text.data.matchAll(/\\S+/g)) {
    const a = top(m.index);
    const b = top(m.index + m[0].length - 1);
    if (a !== null && b !== null && Math.abs(a - b) > 1) broken.push(m[0]);
  }
}
return [broken, wrapped];
"""


def detail_wrapping(d, width):
    """At `width` px: no word of an audit detail is split over two lines."""
    d.set_window_size(width, 900)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
    broken, wrapped = d.execute_script(DETAIL_WRAPPING)
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    d.set_window_size(1280, 900)
    check(not broken, "at %d px the audit details wrap between words only (%d cells take more than "
          "one line; split words: %s)" % (width, wrapped, broken[:5]))
    return wrapped


AUDIT_NARROW = """
const wrap = document.querySelector('#audit').closest('.table-wrap');
const cells = [...document.querySelectorAll('#audit tbody td[data-label]')];
const unnamed = cells.filter((td) =>
  getComputedStyle(td, '::before').content !== JSON.stringify(td.dataset.label)).length;
return [wrap.scrollWidth - wrap.clientWidth, document.documentElement.scrollWidth - innerWidth,
        cells.length, unnamed];
"""


def audit_narrow(d, width):
    """At `width` px the audit records stand one under the other: nothing
    scrolls sideways, and every cell is led by its column's name."""
    d.set_window_size(width, 900)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
    frame_over, page_over, cells, unnamed = d.execute_script(AUDIT_NARROW)
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    d.set_window_size(1280, 900)
    check(frame_over <= 0 and page_over <= 0,
          "at %d px the audit records need no sideways scrolling (frame %d px, page %d px too wide)"
          % (width, frame_over, page_over))
    check(cells > 0 and unnamed == 0,
          "at %d px each audit cell is led by its column's name (%d of %d without)" % (width, unnamed, cells))


def page_checks(d, name):
    csp_clean(d, name)
    axe(d, name)
    shots(d, name)


def no_alert(d):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def headers_of(url):
    with urllib.request.urlopen(url, timeout=WAIT) as r:  # noqa: S310 - our own test daemon
        return {k.lower(): v for k, v in r.headers.items()}


# --- the scenario --------------------------------------------------------------

def main():
    admin_name, admin_pw = ACC["admin"]
    alice_name, alice_pw = ACC["alice"]
    bob_name, bob_pw = ACC["bob"]
    plain_name, plain_pw = ACC["plain"]
    xss_name, xss_pw = ACC["xss"]
    r = root()
    r.call("auth.twofactor.update", {"enabled": True, "window": 1})
    # Short steps for the administrator, who signs in often.
    admin_secret = uri_secret(r.call("user.renew_2fa_secret", admin_name, {"interval": 5})
                              ["twofactor_config"]["provisioning_uri"])
    bob_secret = uri_secret(r.call("user.renew_2fa_secret", bob_name)["twofactor_config"]["provisioning_uri"])

    def admin_code():
        return fresh_code(admin_secret, 5)

    # -- first load and performance, as a user without 2FA ---------------------
    d = browser()
    open_page(d)
    nav = d.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
    res = d.execute_script("return performance.getEntriesByType('resource').map(e => e.toJSON())")
    FIGURES["first_load_bytes"] = nav["transferSize"] + sum(e["transferSize"] for e in res)
    FIGURES["first_load_body_bytes"] = nav["encodedBodySize"] + sum(e["encodedBodySize"] for e in res)
    FIGURES["dom_content_loaded_ms"] = round(nav["domContentLoadedEventEnd"] - nav["startTime"], 1)
    FIGURES["resources"] = [e["name"] for e in res]
    check(all(e["name"].startswith(URL) for e in res), "nothing is loaded from outside the daemon")
    for e in [URL + "/ui/"] + [e["name"] for e in res]:
        h = headers_of(e)
        if h.get("content-security-policy") != CSP:
            fail("no CSP on " + e)
        if h.get("x-content-type-options") != "nosniff" or h.get("referrer-policy") != "no-referrer":
            fail("safety headers missing on " + e)
    ok("CSP, nosniff and no-referrer on every response the page loads (%d)" % (len(res) + 1))
    check(d.find_element(By.NAME, "username").get_attribute("autocomplete") == "username"
          and d.find_element(By.NAME, "password").get_attribute("autocomplete") == "current-password"
          and d.find_element(By.NAME, "code").get_attribute("autocomplete") == "one-time-code"
          and d.find_element(By.NAME, "code").get_attribute("inputmode") == "numeric",
          "autocomplete username / current-password / one-time-code, numeric code field")
    page_checks(d, "signin")
    # Sign-in click to My two-factor shown.
    u = d.find_element(By.NAME, "username")
    u.send_keys(plain_name)
    d.find_element(By.NAME, "password").send_keys(plain_pw)
    d.execute_script("""
      window.__t1 = null;
      new MutationObserver((m, o) => { if (document.getElementById('mine-status') &&
          document.getElementById('mine-status').textContent) { window.__t1 = performance.now(); o.disconnect(); } })
        .observe(document.body, {subtree: true, childList: true, characterData: true});
      window.__t0 = performance.now();
      document.querySelector('#signin button[type=submit]').click();""")
    wait(d, lambda drv: drv.execute_script("return window.__t1"), "My two-factor after the sign-in click")
    FIGURES["signin_click_to_page_ms"] = round(d.execute_script("return window.__t1 - window.__t0"), 1)
    on_mine(d, plain_name)
    sign_out(d)

    # -- wrong password, administrator with password and code -------------------
    shift_before = d.execute_script("return window.__shift")
    sign_in_password(d, admin_name, "not-the-password")
    wait_message(d, "signin-message", "Wrong user name or password", "the wrong-password message")
    ok("a wrong password says so in place")
    check(d.execute_script("return window.__shift") == shift_before,
          "the message moves nothing (no layout shift, every shift counted)")
    sign_in_password(d, admin_name, admin_pw)
    wait(d, lambda drv: drv.find_element(By.NAME, "code").is_displayed(), "the code step")
    page_checks(d, "signin-code")
    enter_code(d, admin_code())
    on_mine(d, admin_name)
    check(by_id(d, "nav").is_displayed() and d.find_element(By.CSS_SELECTOR, "a[data-page=settings]").is_displayed(),
          "the administrator signs in with password and an oathtool code and sees the admin pages")
    sign_out(d)

    # -- wrong codes and the lock-out (bob, his own secret) ---------------------
    bad = wrong_code(bob_secret, 30)
    sign_in_password(d, bob_name, bob_pw)
    enter_code(d, bad)
    wait_message(d, "signin-message", "Wrong code", "the wrong-code message")
    ok("a wrong code shows its message: " + message(d, "signin-message"))
    lock_text = None
    for attempt in range(2, 7):
        if not visible(d, "code-for"):
            sign_in_password(d, bob_name, bob_pw)
            wait(d, lambda drv: visible(drv, "code-for"), "bob's code step")
        d.execute_script("document.getElementById('signin-message').textContent = ''")
        enter_code(d, bad)
        text = wait(d, lambda drv: (lambda t: t if t and not t.startswith("Checking") else None)(
            message(drv, "signin-message")), "the answer to wrong code %d" % attempt)
        ok("wrong code %d: %s" % (attempt, text))
        if attempt == 6:
            lock_text = text
    check(re.search(r"locked out\. Try again in \d+ seconds", lock_text or ""),
          "the sixth wrong code shows the lock-out with its seconds: " + str(lock_text))

    # -- alice sets up 2FA ------------------------------------------------------
    sign_in(d, alice_name, alice_pw)
    wait(d, lambda drv: "not set up" in message(drv, "mine-status"), "alice's status")
    ok("alice starts without a secret")
    page_checks(d, "mine")
    by_id(d, "setup-start").click()
    qr = wait(d, lambda drv: visible(drv, "qr"), "the QR code")
    wait(d, lambda drv: drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", qr),
         "the QR image drawn")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", qr)
    png = os.path.join(ART, "qr-screenshot.png")
    d.save_screenshot(png)
    decoded = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, text=True).stdout.strip()
    check(decoded.startswith("otpauth://totp/"), "zbarimg decodes the QR code in the screenshot")
    shown_secret = by_id(d, "secret").text.replace(" ", "")
    check(uri_secret(decoded) == shown_secret, "the secret shown as text is the QR code's")
    page_checks(d, "mine-setup")
    code_field = by_id(d, "setup-code")
    code_field.send_keys(wrong_code(shown_secret, 30))
    by_id(d, "setup-confirm").click()
    wait_message(d, "setup-message", "does not match", "the wrong confirming code's message")
    check(r.call("user.twofactor_config", alice_name)["secret_configured"] is False,
          "a wrong confirming code keeps the old state (no secret)")
    code_field.clear()
    code_field.send_keys(fresh_code(shown_secret, 30))
    by_id(d, "setup-confirm").click()
    wait_message(d, "mine-message", "is set up", "the confirmation")
    active_uri = r.call("user.provisioning_uri", alice_name)
    check(decoded == active_uri, "the decoded QR code is exactly the URI the API returns for alice")
    alice_secret = shown_secret
    sign_out(d)
    sign_in_password(d, alice_name, alice_pw)
    wait(d, lambda drv: visible(drv, "code-for"), "alice asked for her code")
    ok("signing in again asks alice for her code")
    enter_code(d, fresh_code(alice_secret, 30))
    on_mine(d, alice_name)

    # -- recovery codes -----------------------------------------------------------
    by_id(d, "codes-generate").click()
    wait(d, lambda drv: visible(drv, "codes-list"), "the recovery codes")
    codes = [li.text.strip() for li in d.find_elements(By.CSS_SELECTOR, "#codes-list li")]
    check(len(codes) == 10 and all(re.fullmatch(r"[a-z2-7]{5}-[a-z2-7]{5}", c) for c in codes),
          "ten recovery codes are shown")
    page_checks(d, "mine-codes")
    for old in os.listdir(DOWNLOADS):
        os.remove(os.path.join(DOWNLOADS, old))
    by_id(d, "codes-download").click()
    path = os.path.join(DOWNLOADS, "recovery-codes-%s.txt" % alice_name)
    wait(d, lambda drv: os.path.exists(path) and os.path.getsize(path) > 0, "the downloaded file")
    content = open(path, encoding="utf-8").read()
    check([line for line in content.splitlines() if re.fullmatch(r"[a-z2-7]{5}-[a-z2-7]{5}", line)] == codes,
          "the downloaded text file holds exactly the ten codes")
    check("10 recovery codes left" in message(d, "codes-left"), "the count shows 10")
    sign_out(d)
    sign_in_password(d, alice_name, alice_pw)
    enter_code(d, codes[0].upper().replace("-", " "))
    on_mine(d, alice_name)
    wait(d, lambda drv: "9 recovery codes left" in message(drv, "codes-left"), "the count going down")
    ok("a recovery code in the code field signs in, and the count goes down to 9")

    # -- reload, logout, restart, another address -------------------------------------
    token = token_of(d)
    check(token and re.fullmatch(r"[0-9a-f]{64}", token), "the page keeps a session token in sessionStorage")
    check(d.execute_script("return document.cookie") == "" and
          d.execute_script("return localStorage.length") == 0, "no cookie and nothing in localStorage")
    d.refresh()
    on_mine(d, alice_name)
    ok("a reload keeps alice signed in")
    check(token_login(token, source="127.0.0.2") == "AUTH_ERR", "the token used from another address is refused")
    check(token_login(token) == "SUCCESS", "the same token from the page's address works")
    sign_out(d)
    check(token_login(token) == "AUTH_ERR", "after sign-out (auth.logout) the token no longer works")
    sign_in_password(d, alice_name, alice_pw)
    enter_code(d, codes[1])
    on_mine(d, alice_name)
    token = token_of(d)
    print("RESTART", flush=True)
    if sys.stdin.readline().strip() != "OK":
        fail("the daemon was not restarted")
    r = root()
    check(token_login(token) == "AUTH_ERR", "after a daemon restart the token no longer works")
    d.refresh()
    wait(d, lambda drv: visible(drv, "signin-title"), "the sign-in page after the restart")
    wait_message(d, "signin-message", "session has ended", "the ended-session note")
    ok("after a restart a reload asks to sign in again")

    # -- administrator: settings, users, live updates ----------------------------------
    sign_in(d, admin_name, admin_pw, admin_code())
    other = browser()
    open_page(other)
    sign_in(other, admin_name, admin_pw, admin_code())
    go(other, "settings", "settings-title")
    go(d, "settings", "settings-title")
    page_checks(d, "settings")
    check(not by_id(d, "set-ssh").is_selected(), "SSH starts off")
    by_id(d, "set-ssh").click()
    d.find_element(By.CSS_SELECTOR, "#settings button[type=submit]").click()
    wait_message(d, "settings-message", "Saved", "the saved message")
    check(r.call("auth.twofactor.config")["services"]["ssh"] is True,
          "the administrator turns SSH on in Settings and auth.twofactor.config shows it")
    wait(other, lambda drv: by_id(drv, "set-ssh").is_selected(), "the second session's SSH box")
    ok("a second browser session sees the settings change live")
    windows = by_id(d, "set-window")
    windows.clear()
    windows.send_keys("11")
    d.find_element(By.CSS_SELECTOR, "#settings button[type=submit]").click()
    wait_message(d, "settings-message", "window: Should be between 0 and 10", "the validation message")
    check(r.call("auth.twofactor.config")["window"] == 1, "a refused setting changes nothing")

    go(other, "users", "users-title")
    go(d, "users", "users-title")
    page_checks(d, "users")
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-user="%s"]' % alice_name)
    check("Set up" in row.text and "8" in row.text, "Users shows alice's secret and her 8 codes left")
    names = [th.text for th in d.find_elements(By.CSS_SELECTOR, "#users tbody th")]
    check(xss_name in names, "a user named %s shows as text" % xss_name)
    check(not d.find_elements(By.CSS_SELECTOR, "#users img") and no_alert(d), "and runs nothing (no img, no alert)")
    d.find_element(By.CSS_SELECTOR, 'button[data-user="%s"]' % alice_name).click()
    confirm = wait(d, lambda drv: [b for b in drv.find_elements(By.CSS_SELECTOR, "#users-confirm button")
                                   if b.text.startswith("Yes")], "the confirmation")
    confirm[0].click()
    wait_message(d, "users-message", "Cleared", "the cleared message")
    wait(other, lambda drv: "Not set up" in drv.find_element(
        By.CSS_SELECTOR, 'tr[data-user="%s"]' % alice_name).text, "the second session's Users table")
    ok("the administrator clears alice's secret; the second session sees it live")
    alice = browser()
    open_page(alice)
    sign_in(alice, alice_name, alice_pw)
    ok("alice's next sign-in asks no code")
    alice.quit()
    drivers.remove(alice)

    # -- audit --------------------------------------------------------------------------
    go(d, "audit", "audit-title")
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#audit tbody tr td"), "audit rows")
    page_checks(d, "audit")
    details = [td.text for td in d.find_elements(By.CSS_SELECTOR, "#audit td.detail") if td.text]
    cli = subprocess.run([CLI, "--url", "ws+unix://" + SOCKET, "audit", "query", "limit=1000"],
                         capture_output=True, text=True, timeout=WAIT)
    check(cli.returncode == 0, "tfa audit query answers (%s)" % cli.stderr.strip())
    check(details and all("=" in t for t in details),
          "the audit details read as key=value text (%d on the first page)" % len(details))
    check(not any(t.lstrip().startswith("{") for t in details), "no detail is shown as raw JSON")
    missing = [t for t in details if t not in cli.stdout]
    check(not missing, "each detail reads as `tfa audit query` shows it (not in its table: %s)" % missing[:3])
    check(detail_wrapping(d, 360) > 0, "at 360 px some details take several lines")
    audit_narrow(d, 360)
    detail_wrapping(d, 1280)
    by_id(d, "audit-user").send_keys(bob_name)
    by_id(d, "audit-outcome").send_keys("wrong")
    d.find_element(By.CSS_SELECTOR, "#audit-filter button[type=submit]").click()
    wait(d, lambda drv: "records)" in by_id(drv, "audit-page").text, "the filtered audit")
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    check(rows and all(r_[2] == "wrong" and r_[3] == bob_name for r_ in rows),
          "the audit filter by user and outcome shows only bob's wrong codes (%d)" % len(rows))
    check(any(r_[1] == "otp.check" and "127.0.0.1" in r_[4] for r_ in rows),
          "the audit lists the failed code with its address")
    times = [r_[0] for r_ in rows]
    check(times == sorted(times, reverse=True), "newest first")
    other.quit()
    drivers.remove(other)
    sign_out(d)

    # -- the XSS user signs in ------------------------------------------------------------
    sign_in(d, xss_name, xss_pw)
    check(by_id(d, "who-name").text == xss_name and no_alert(d), "the user name shows as text when signed in")
    sign_out(d)

    # -- foreign Origin -------------------------------------------------------------------
    # Another site's page in the same browser tries the daemon's WebSocket.
    import http.server
    import threading
    evil_page = ("<!doctype html><title>waiting</title><script>"
                 "const ws = new WebSocket('ws://%s/api/current');"
                 "ws.onopen = () => { document.title = 'opened'; };"
                 "ws.onerror = () => { document.title = 'refused'; };"
                 "</script>" % URL.split("//")[1]).encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil_page)

        def log_message(self, *args):
            pass

    evil = http.server.HTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    d.get("http://localhost:%d/" % evil.server_address[1])
    wait(d, lambda drv: drv.title in ("opened", "refused"), "the other site's WebSocket attempt")
    check(d.title == "refused", "another site's page in the browser cannot open the daemon's WebSocket")
    evil.shutdown()
    try:
        tcp(origin="http://evil.example")
        fail("a WebSocket from a foreign Origin was accepted")
    except websocket.WebSocketBadStatusException as e:
        check(e.status_code == 403, "a WebSocket upgrade with a foreign Origin is refused (403)")

    # -- keyboard only: sign in to sign out ------------------------------------------------
    open_page(d)
    keys = ActionChains(d)
    keys.send_keys(admin_name).send_keys(Keys.TAB).send_keys(admin_pw).send_keys(Keys.ENTER).perform()
    wait(d, lambda drv: drv.switch_to.active_element.get_attribute("name") == "code", "focus on the code field")
    ActionChains(d).send_keys(admin_code()).send_keys(Keys.ENTER).perform()
    on_mine(d, admin_name)
    for _ in range(40):
        if d.switch_to.active_element.get_attribute("id") == "signout":
            break
        ActionChains(d).send_keys(Keys.TAB).perform()
    check(d.switch_to.active_element.get_attribute("id") == "signout", "Tab reaches Sign out")
    ActionChains(d).send_keys(Keys.ENTER).perform()
    wait(d, lambda drv: visible(drv, "signin-title"), "signed out by keyboard")
    ok("keyboard only: sign in with password and code, then sign out")
    csp_clean(d, "the whole run")

    # -- HTTPS ------------------------------------------------------------------------------
    if HTTPS_URL:
        s = browser(insecure_certs=True)
        open_page(s, HTTPS_URL)
        check(s.execute_script("return location.protocol") == "https:" and
              s.execute_script("return window.isSecureContext"), "the page loads over HTTPS")
        sign_in(s, plain_name, plain_pw)
        ok("sign-in over HTTPS and wss:// works")
        csp_clean(s, "HTTPS")
        s.quit()
        drivers.remove(s)

    d.quit()
    drivers.remove(d)
    FIGURES["axe_pages"] = axe_pages
    with open(os.path.join(ART, "figures.json"), "w", encoding="utf-8") as f:
        json.dump(FIGURES, f, indent=2)
    print("FIGURES " + json.dumps(FIGURES), flush=True)
    print("ALL PASSED", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        for drv in list(drivers):
            try:
                drv.quit()
            except Exception:  # noqa: BLE001
                pass

"""The browser end of the end-to-end scripts (login.py, cloud.py): shared, not run by itself.

`Portal` drives headless Chromium (Selenium, /usr/bin/chromedriver + /usr/bin/chromium)
through the portal by the *visible Serbian words* of the seed guide: it finds links and
buttons by their exact text, waits by polling, takes full-page screenshots at a 1280x900
viewport, and on a failure reports the step, what was expected and what the page showed.
`Portal.login()` is the seed's steps 2-7 (login.py); `drive()` runs a script's steps with
the browser's lifecycle around them and prints PASS or FAIL.
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - environment problem, reported plainly
    print(
        "FAIL: the Python package `selenium` is not installed in this interpreter "
        f"({sys.executable}); use the test venv: target/test-venv/bin/python "
        "(scripts/test installs scripts/requirements-test.txt into it)",
        file=sys.stderr,
    )
    sys.exit(1)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# The guide's words (seed README, steps 2-7).
W_LOGIN = "Пријава"
W_MOBILE_APP = "Мобилна апликација"
W_USERNAME = "корисничко име"
W_SUBMIT = "Пријавите се"
W_SERVICES = "услуге"
W_CLOUD_CERT = "Квалификовани електронски сертификат у клауду"

DESKTOP = (1280, 900)
PHONE = (390, 844)
ELEMENT_TIMEOUT = 15  # seconds to wait for a page's element after a click
POLL = 0.2

# Serbian Cyrillic (and Latin) upper -> lower, for case-insensitive XPath 1.0 matching.
_UPPER = "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "абвгдђежзијклљмнњопрстћуфхцчџшabcdefghijklmnopqrstuvwxyz"

# What a person can click: the element itself or its nearest such ancestor.
CLICKABLE = (
    "self::a or self::button or self::summary or self::label or self::input"
    " or @role='button' or @role='link' or @role='menuitem' or @role='tab' or @onclick"
)


class StepFailure(Exception):
    """A check failed: `expected` says what the page should have shown."""

    def __init__(self, expected: str, detail: str = ""):
        super().__init__(expected)
        self.expected = expected
        self.detail = detail


def xpath_literal(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat('" + s.replace("'", "', \"'\", '") + "')"


def norm(s: str) -> str:
    return " ".join(s.split())


class Portal:
    def __init__(self, args: argparse.Namespace, user_data_dir: str):
        self.args = args
        self.shots = Path(args.screenshots)
        self.step = "starting the browser"
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={user_data_dir}",
            f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
            "--lang=sr",
        ):
            opts.add_argument(flag)
        if getattr(args, "trust_spki", None):
            opts.add_argument(f"--ignore-certificate-errors-spki-list={args.trust_spki}")
        # Accept-Language of every request.
        opts.add_experimental_option("prefs", {"intl.accept_languages": "sr-Cyrl-RS,sr"})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(user_data_dir, "chromedriver.log"))
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_page_load_timeout(30)
        self.desktop_window = DESKTOP
        self.size_viewport()

    def size_viewport(self) -> None:
        """Make the page's viewport (not the window frame) 1280x900 CSS px.

        Headless Chromium counts some browser chrome in the window size (a 1280x900 window
        gives a 1280x757 viewport), so grow the window by the difference."""
        d = self.driver
        d.set_window_size(*DESKTOP)
        iw, ih = d.execute_script("return [window.innerWidth, window.innerHeight];")
        if (iw, ih) != DESKTOP:
            self.desktop_window = (2 * DESKTOP[0] - iw, 2 * DESKTOP[1] - ih)
            d.set_window_size(*self.desktop_window)

    # ---- finding things by their words ---------------------------------------------------

    def _displayed(self, els: list[WebElement]) -> list[WebElement]:
        out = []
        for el in els:
            try:
                if el.is_displayed():
                    out.append(el)
            except StaleElementReferenceException:
                pass
        return out

    def clickables_by_text(self, text: str) -> list[WebElement]:
        """Visible elements a person would click whose visible words are exactly `text`.

        The innermost element whose normalized text equals `text`, lifted to its nearest
        clickable ancestor-or-self (so `<a><span>X</span></a>` gives the `<a>`); also
        `<input type=submit value=X>`.
        """
        lit = xpath_literal(text)
        found: list[WebElement] = []
        inner = self.driver.find_elements(
            By.XPATH, f"//body//*[normalize-space()={lit}][not(*[normalize-space()={lit}])]"
        )
        for el in self._displayed(inner):
            try:
                up = el.find_elements(By.XPATH, f"./ancestor-or-self::*[{CLICKABLE}][1]")
            except StaleElementReferenceException:
                continue
            target = up[0] if up else el
            if target not in found:
                found.append(target)
        inputs = self.driver.find_elements(
            By.XPATH, f"//input[@type='submit' or @type='button'][normalize-space(@value)={lit}]"
        )
        found.extend(e for e in self._displayed(inputs) if e not in found)
        return found

    def wait_for(self, what: str, fn, timeout: float = ELEMENT_TIMEOUT):
        """Poll `fn` until it returns something truthy; fail with `what` as the expectation."""

        def probe(_driver):
            try:
                return fn()
            except StaleElementReferenceException:
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=POLL).until(probe)
        except TimeoutException:
            raise StepFailure(f"{what} (waited {timeout:g} s)") from None

    def clickable(self, text: str, timeout: float = ELEMENT_TIMEOUT) -> WebElement:
        els = self.wait_for(
            f"a visible link or button reading exactly «{text}»",
            lambda: self.clickables_by_text(text),
            timeout,
        )
        return els[0]

    def click(self, el: WebElement) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        try:
            el.click()
        except WebDriverException:
            # Covered by a sticky header or the like: a person could still tap it.
            self.driver.execute_script("arguments[0].click();", el)

    def body_text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException:
            return ""

    def settled(self) -> None:
        """The page has loaded and its fonts are ready (screenshots show real glyphs)."""
        self.wait_for(
            "the page to finish loading (document.readyState complete, fonts loaded)",
            lambda: self.driver.execute_script(
                "return document.readyState === 'complete'"
                " && (!document.fonts || document.fonts.status === 'loaded');"
            ),
        )

    # ---- evidence ------------------------------------------------------------------------

    def screenshot(self, name: str, folder: Path | None = None) -> None:
        """Full-page PNG (the whole document, not just the viewport), into `folder` (default:
        the screenshots folder)."""
        path = (folder or self.shots) / name
        try:
            m = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = m.get("cssContentSize") or m["contentSize"]
            vw = self.driver.execute_script("return window.innerWidth;")
            w = max(math.ceil(size["width"]), int(vw))
            h = min(max(math.ceil(size["height"]), 1), 16000)
            data = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
                },
            )["data"]
            path.write_bytes(base64.b64decode(data))
        except WebDriverException:
            self.driver.save_screenshot(str(path))  # viewport only, better than nothing
        print(f"  screenshot {path}")

    def report_failure(self, err: StepFailure | Exception) -> None:
        print(f"FAIL at step: {self.step}")
        if isinstance(err, StepFailure):
            print(f"  expected: {err.expected}")
            if err.detail:
                print(f"  detail:   {err.detail}")
        else:
            print(f"  error:    {type(err).__name__}: {err}")
        try:
            d = self.driver
            print(f"  page URL:   {d.current_url}")
            print(f"  page title: {d.title!r}")
            text = self.body_text()
            excerpt = text[:1500] + (" [...]" if len(text) > 1500 else "")
            print("  visible text (excerpt):")
            for line in excerpt.splitlines() or ["(none)"]:
                print(f"    | {line}")
            try:
                logs = [e for e in d.get_log("browser") if e.get("level") in ("SEVERE", "WARNING")]
                for e in logs[-10:]:
                    print(f"  browser console {e.get('level')}: {e.get('message')}")
            except WebDriverException:
                pass
            d.save_screenshot(str(self.shots / "failure.png"))
            (self.shots / "failure.html").write_text(d.page_source, encoding="utf-8")
            print(f"  saved {self.shots / 'failure.png'} and {self.shots / 'failure.html'}")
        except WebDriverException as e:
            print(f"  (could not read the page: {e.__class__.__name__}: {e.msg})")

    # ---- the guide, step by step ---------------------------------------------------------

    def login(self) -> None:
        """The seed guide's steps 2-7: from `/` to the open **услуге** menu (login.py)."""
        a = self.args
        d = self.driver

        # Guide step 2: top right, Пријава.
        self.step = "1. home page: Пријава (top right)"
        print(self.step)
        d.get(urljoin(a.url.rstrip("/") + "/", ""))
        self.settled()
        candidates = self.wait_for(
            f"a visible link or button reading exactly «{W_LOGIN}» on the home page",
            lambda: self.clickables_by_text(W_LOGIN),
        )
        # Prefer the one in the page header.
        in_header = [
            e for e in candidates
            if e.find_elements(By.XPATH, "./ancestor::*[self::header or @role='banner']")
        ]
        login = (in_header or candidates)[0]
        r = login.rect
        vw = d.execute_script("return window.innerWidth;")
        if not (r["x"] + r["width"] / 2 > vw / 2 and r["y"] < 250):
            raise StepFailure(
                f"«{W_LOGIN}» at the top right of the page",
                f"it is at x={r['x']:.0f}..{r['x'] + r['width']:.0f}, y={r['y']:.0f} "
                f"in a {vw}px-wide window",
            )
        self.screenshot("01-home.png")
        self.click(login)

        # Guide step 3: how to log in -> Мобилна апликација.
        self.step = "2. login methods: Мобилна апликација"
        print(self.step)
        mobile = self.clickable(W_MOBILE_APP)
        self.settled()
        self.screenshot("02-login-methods.png")
        self.click(mobile)

        self.username_and_phone()

        # Guide step 6: the portal logs in where the login was started (the page polls).
        self.step = "5. account page"
        print(self.step)
        heading = a.account_heading

        def on_account():
            if urlparse(d.current_url).path.rstrip("/") == "/account":
                return True
            if heading:
                lit = xpath_literal(heading)
                hs = d.find_elements(
                    By.XPATH,
                    f"//*[self::h1 or self::h2 or self::h3 or @role='heading'][contains(normalize-space(), {lit})]",
                )
                return bool(self._displayed(hs))
            return False

        self.wait_for(
            "the browser to move on by itself to the account page (URL path /account"
            + (f" or a heading «{heading}»" if heading else "")
            + ") after the phone approved",
            on_account,
            timeout=a.timeout,
        )
        self.settled()
        self.clickable(W_SERVICES)  # the control is there before we look further
        text = norm(self.body_text())
        for label, want in (("the user's name", a.expect_name), ("the user's e-mail", a.email)):
            if want and norm(want) not in text:
                raise StepFailure(f"{label} «{want}» shown on the account page")
        self.screenshot("06-account.png")
        self.phone_screenshot("06b-account-phone.png")

        # Guide step 7: услуге -> Квалификовани електронски сертификат у клауду.
        self.step = "6. услуге: Квалификовани електронски сертификат у клауду"
        print(self.step)
        services = self.clickable(W_SERVICES)
        self.click(services)
        entry = self.wait_for(
            f"the entry «{W_CLOUD_CERT}» visible after opening «{W_SERVICES}»",
            lambda: self.visible_text_element(W_CLOUD_CERT),
        )
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", entry)
        self.screenshot("07-services-menu.png")

    def username_and_phone(self) -> None:
        """The guide's steps 4-5 from the username page: the e-mail, **Пријавите се**, the
        code shown, and the phone approving it (login.py, and the OpenID provider's test)."""
        a = self.args
        # Guide step 4: корисничко име + Пријавите се.
        self.step = "3. username: корисничко име, Пријавите се"
        print(self.step)
        field = self.wait_for(
            f"an input labelled «{W_USERNAME}» (a <label> containing those words)",
            self.username_input,
        )
        submit = self.clickable(W_SUBMIT)
        self.settled()
        field.clear()
        field.send_keys(a.email)
        if field.get_attribute("value") != a.email:
            raise StepFailure(
                f"the {W_USERNAME} field to hold {a.email!r}",
                f"it holds {field.get_attribute('value')!r}",
            )
        self.screenshot("03-username.png")
        self.click(submit)

        # Guide step 5: the phone gets the request; the page shows the code to compare.
        self.step = "4. waiting page: verification code, phone approves"
        print(self.step)
        code = self.wait_for(
            'a visible 4-digit code in the element with data-testid="verification-code"',
            self.verification_code,
        )
        print(f"  verification code shown: {code}")
        self.settled()
        self.screenshot("04-waiting-code.png")
        self.phone_approves(code)

    def username_input(self) -> WebElement | None:
        d = self.driver
        lit = xpath_literal(W_USERNAME)
        labels = d.find_elements(
            By.XPATH,
            f"//label[contains(translate(normalize-space(), '{_UPPER}', '{_LOWER}'), {lit})]",
        )
        for label in labels:
            target = label.get_attribute("for")
            if target:
                # The label's `for` names the input: this is how a label points at it.
                els = d.find_elements(By.XPATH, f"//*[@id={xpath_literal(target)}]")
            else:
                els = label.find_elements(By.XPATH, ".//input | .//textarea")
            els = self._displayed(els)
            if els:
                return els[0]
        return None

    def verification_code(self) -> str | None:
        for el in self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="verification-code"]'):
            if el.is_displayed():
                code = "".join(el.text.split())
                if len(code) == 4 and code.isdigit():
                    return code
        return None

    def visible_text_element(self, text: str) -> WebElement | None:
        lit = xpath_literal(text)
        for xp in (
            f"//body//*[normalize-space()={lit}]",
            f"//body//*[contains(normalize-space(), {lit})][not(*[contains(normalize-space(), {lit})])]",
        ):
            els = self._displayed(self.driver.find_elements(By.XPATH, xp))
            if els:
                return els[-1]
        return None

    def phone_screenshot(self, name: str) -> None:
        """The same page at a phone's size (390x844 CSS px, mobile viewport)."""
        d = self.driver
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True},
        )
        try:
            self.wait_for(
                f"the page to re-lay out at {PHONE[0]}px",
                lambda: d.execute_script("return window.innerWidth;") == PHONE[0],
            )
            self.screenshot(name)
        finally:
            d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            d.set_window_size(*self.desktop_window)

    def phone_approves(self, code: str) -> None:
        a = self.args
        pin = Path(a.pin_file).read_text(encoding="utf-8").strip()
        cmd = [
            a.consentid, "--home", a.consentid_home,
            "approve", "--next", "--wait", "30", "--code", code, "--pin-stdin",
        ]
        # What is written to the repository names no path of this machine.
        shown = " ".join(["consentid", "--home", "PHONE_HOME"] + cmd[3:])
        print(f"  phone: {' '.join(cmd)}  (PIN on stdin)")
        out_path = self.shots / "05-phone-approves.txt"
        try:
            p = subprocess.run(
                cmd, input=pin + "\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=90,
            )
            output, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = None
        except OSError as e:
            output, rc = f"could not run it: {e}\n", None
        out_path.write_text(
            f"$ {shown}   # PIN on stdin\n{output}"
            + ("" if output.endswith("\n") or not output else "\n")
            + f"# exit status: {'timed out after 90 s' if rc is None else rc}\n",
            encoding="utf-8",
        )
        print(f"  saved {out_path}")
        if rc != 0:
            raise StepFailure(
                "the phone (consentid approve) to exit 0",
                f"exit status {'timeout/not run' if rc is None else rc}; output:\n{output.strip()}",
            )

    def quit(self) -> None:
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass



def add_login_arguments(p: argparse.ArgumentParser) -> None:
    """The command-line options of the login (login.py's, in its order)."""
    p.add_argument("--url", required=True, help="portal base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--email", required=True, help="the username (registered e-mail)")
    p.add_argument("--consentid", required=True, help="the consentid command-line app (the phone)")
    p.add_argument("--consentid-home", required=True, help="its --home folder (enrolled app)")
    p.add_argument("--pin-file", required=True, help="file holding the app's PIN")
    p.add_argument("--screenshots", required=True, help="folder for screenshots and evidence")
    p.add_argument("--expect-name", help="the user's name the account page must show")
    p.add_argument(
        "--account-heading",
        help="heading text that also counts as 'on the account page' (besides URL path /account)",
    )
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the browser to reach the account page (default 30)")
    p.add_argument("--trust-spki",
                   help="base64 SHA-256 of the server certificate's SubjectPublicKeyInfo: Chromium "
                        "accepts that one certificate (an https test server with a throw-away CA)")


def drive(args: argparse.Namespace, steps, portal_class=Portal) -> int:
    """Starts the browser, runs `steps(portal)`, prints PASS (0) or what failed (1).

    The browser is stopped and its fresh profile removed on every way out, SIGTERM included."""
    Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    for path, what in ((CHROMIUM, "Debian package chromium"), (CHROMEDRIVER, "Debian package chromium-driver")):
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} not found: install the {what}")
            return 1
    if not os.access(args.pin_file, os.R_OK):
        print(f"FAIL: cannot read --pin-file {args.pin_file}")
        return 1

    # SIGTERM -> normal exit path, so that the browser is stopped and the profile removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    user_data_dir = tempfile.mkdtemp(prefix="eidportal-e2e-chromium-")
    portal = None
    started = time.monotonic()
    try:
        try:
            portal = portal_class(args, user_data_dir)
        except WebDriverException as e:
            print(f"FAIL: could not start Chromium through ChromeDriver: {e.msg}")
            log = Path(user_data_dir, "chromedriver.log")
            if log.exists():
                print("chromedriver log (tail):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
            return 1
        try:
            steps(portal)
        except (StepFailure, WebDriverException) as e:
            portal.report_failure(e)
            return 1
        print(f"all steps done in {time.monotonic() - started:.1f} s")
        print("PASS")
        return 0
    finally:
        if portal is not None:
            portal.quit()
        shutil.rmtree(user_data_dir, ignore_errors=True)

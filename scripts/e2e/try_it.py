#!/usr/bin/env python3
"""The README's "Try it" section, taken as a newcomer takes it: its commands as written, its
browser steps in headless Chromium by their visible Serbian words.

The section's text is the test. This script reads README.md, takes the part between the heading
`## Try it` and the next `## ` heading, and runs each fenced `sh` block there through
`bash -e -o pipefail -c`, in a fresh working folder (so `./eidportal-data`, `./phone` and
`activate.png` are made there), with `eidportal` and `consentid` on PATH as the binaries given
(the README puts `target/release` on PATH; under the test that folder does not exist). The
blocks, in order:

  1. the server: every line but `cargo build ...` (the test's binaries are already built; the
     packages it names must exist in the workspace) runs in the background, with
     EIDPORTAL_LISTEN and EIDPORTAL_APP_LISTEN set to 127.0.0.1:0 so that it takes free ports;
     the addresses it prints replace `127.0.0.1:8080` and `127.0.0.1:8081` in the later blocks
     (the only change made to the README's text, besides the one below), and the later
     commands get the same two variables;
  2. enrol and activate: run as written;
     then the browser: /, **Пријава**, **Мобилна апликација**, **корисничко име** (the e-mail of
     block 2's `--email`), **Пријавите се**, the 4-digit code;
  3. the login's approval: `--code 1234` becomes `--code` and the code the portal shows;
     then **услуге** -> **Квалификовани електронски сертификат у клауду** -> **Издај** ->
     **Прихвати** -> the page **Потврдите у апликацији ConsentID**;
  4. the issue's approval, as written; then **✓ Успешно је издат сертификат за потпис у
     клауду**, and `eidportal cert list --email E --json` must list an issued `cloud_signing`
     certificate;
     then **услуге** -> **Потписивање документа**, the PDF the section names (a path in the
     repository), the level the section names (**PAdES-B-T**), **Потпиши**;
  5. the signature's approval, as written; then **Преузми потписани документ**: the download
     must validate with `pyhanko sign validate --force-revinfo` (the server's root as the
     only trust anchor): `INTACT:TRUSTED`, and its time-stamp `TIMESTAMP_TOKEN<INTACT:TRUSTED>`.

Every word in bold in the section must be one this script clicks or waits for, and the other
way round, so the prose stays true as well. Each block must exit 0.

Prints PASS and exits 0, or prints what failed (the block, its output; or the page, as the
other scripts do, with failure.png and failure.html in --screenshots) and exits 1.

Usage:
  python scripts/e2e/try_it.py --readme README.md --eidportal BIN --consentid BIN \\
      --work DIR --screenshots DIR [--timeout 30]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

# The shared browser code lives beside this file (also under `python -P` / PYTHONSAFEPATH).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cloud import (  # noqa: E402
    W_ACCEPT,
    W_APPROVE_IN_APP,
    W_ISSUE,
    W_ISSUED,
    CloudPortal,
)
from portal import (  # noqa: E402
    CHROMEDRIVER,
    CHROMIUM,
    W_CLOUD_CERT,
    W_LOGIN,
    W_MOBILE_APP,
    W_SERVICES,
    W_SUBMIT,
    W_USERNAME,
    By,
    StepFailure,
    WebDriverException,
)

W_MY_ACCOUNT = "Мој налог"
W_SIGN_SERVICE = "Потписивање документа"
W_SIGN_LEVEL = "PAdES-B-T"
W_SIGN_SUBMIT = "Потпиши"
W_SIGNED = "Документи су потписани"
W_DOWNLOAD = "Преузми потписани документ"

# The words the section sets in bold: exactly the ones this script clicks or waits for.
SECTION_WORDS = {
    W_LOGIN, W_MOBILE_APP, W_USERNAME, W_SUBMIT, W_SERVICES, W_CLOUD_CERT, W_ISSUE, W_ACCEPT,
    W_APPROVE_IN_APP, W_ISSUED, W_SIGN_SERVICE, W_SIGN_LEVEL, W_SIGN_SUBMIT, W_DOWNLOAD,
}

PORTAL = "127.0.0.1:8080"
APP = "127.0.0.1:8081"
LOGIN_CODE = "--code 1234"


# ---- the section ------------------------------------------------------------------------

class Section:
    """The "Try it" section of README.md: its `sh` blocks and its prose."""

    def __init__(self, readme: Path):
        lines = readme.read_text(encoding="utf-8").splitlines()
        try:
            start = lines.index("## Try it")
        except ValueError:
            raise SystemExit("FAIL: README.md has no heading `## Try it`") from None
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        self.blocks: list[str] = []
        prose: list[str] = []
        block: list[str] | None = None
        for line in lines[start + 1:end]:
            if block is None and line.strip() == "```sh":
                block = []
            elif block is not None and line.strip() == "```":
                self.blocks.append("\n".join(block) + "\n")
                block = None
            elif block is not None:
                block.append(line)
            else:
                prose.append(line)
        if block is not None:
            raise SystemExit("FAIL: a ```sh block of the section is not closed")
        self.prose = "\n".join(prose)
        self.bold = set(re.findall(r"\*\*(.+?)\*\*", " ".join(self.prose.split())))

    def check(self, repository: Path) -> None:
        """The section has the shape this script follows; fails with what differs."""
        shapes = (
            ("the server", "eidportal serve"),
            ("enrol and activate", "consentid --home"),
            ("the login's approval", LOGIN_CODE),
            ("the issue's approval", "approve --next"),
            ("the signature's approval", "approve --next"),
        )
        if len(self.blocks) != len(shapes):
            raise SystemExit(f"FAIL: the section has {len(self.blocks)} ```sh blocks; this test "
                             f"follows {len(shapes)}: " + ", ".join(s[0] for s in shapes))
        for (what, needle), block in zip(shapes, self.blocks):
            if needle not in block:
                raise SystemExit(f"FAIL: the block for {what} does not hold `{needle}`:\n{block}")
        if self.blocks[2].count(LOGIN_CODE) != 1:
            raise SystemExit(f"FAIL: the login's block must hold `{LOGIN_CODE}` once")
        if self.bold != SECTION_WORDS:
            raise SystemExit(
                "FAIL: the section's words in bold differ from those this test clicks and waits for:\n"
                f"  only in the README: {sorted(self.bold - SECTION_WORDS)}\n"
                f"  only in the test:   {sorted(SECTION_WORDS - self.bold)}")
        pdf = self.pdf()
        if not (repository / pdf).is_file():
            raise SystemExit(f"FAIL: the section's example PDF `{pdf}` is not in the repository")

    def flag(self, name: str) -> str:
        """The value of `--name` in the enrolment block."""
        m = re.search(rf"--{name} (\S+)", self.blocks[1])
        if not m:
            raise SystemExit(f"FAIL: the enrolment block has no --{name}")
        return m.group(1)

    def pdf(self) -> str:
        m = re.search(r"`([^`\s]+\.pdf)`", self.prose)
        if not m:
            raise SystemExit("FAIL: the section names no example PDF (`path/file.pdf`)")
        return m.group(1)


def workspace_packages(repository: Path) -> set[str]:
    names = set()
    for manifest in repository.glob("crates/*/Cargo.toml"):
        m = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(encoding="utf-8"), re.M)
        if m:
            names.add(m.group(1))
    return names


# ---- running the blocks -----------------------------------------------------------------

class Terminal:
    """Runs the section's blocks as a newcomer's terminal would, in `work`."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        bin_dir = self.work.parent / (self.work.name + "-bin")
        bin_dir.mkdir(exist_ok=True)
        for name, target in (("eidportal", args.eidportal), ("consentid", args.consentid)):
            link = bin_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path(target).resolve())
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("EIDPORTAL_") or k.startswith("EIDPORTAL_TEST_") or k == "EIDPORTAL_LOG"}
        env.pop("CONSENTID_HOME", None)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        self.env = env
        self.server: subprocess.Popen | None = None
        self.server_output: list[str] = []
        self.portal = PORTAL
        self.app = APP

    def adapt(self, block: str) -> str:
        return block.replace(PORTAL, self.portal).replace(APP, self.app)

    def start_server(self, block: str, repository: Path) -> str:
        """Block 1 without its `cargo build` line, in the background; returns the portal's URL."""
        lines = []
        packages = workspace_packages(repository)
        for line in block.splitlines():
            if line.startswith("cargo build"):
                named = re.findall(r"-p (\S+)", line)
                missing = [p for p in named if p not in packages]
                if not named or missing:
                    raise SystemExit(f"FAIL: `{line}` names packages not in the workspace: {missing or named}")
                print(f"  not run (the binaries are built): {line}")
                continue
            lines.append(line)
        script = "\n".join(lines) + "\n"
        print("$ " + script.strip().replace("\n", "\n$ "))
        env = dict(self.env, EIDPORTAL_LISTEN="127.0.0.1:0", EIDPORTAL_APP_LISTEN="127.0.0.1:0")
        stderr = open(self.work.parent / (self.work.name + "-server.log"), "wb")  # noqa: SIM115
        self.server = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.work, env=env,
            stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
        found: dict[str, str] = {}
        ready = threading.Event()

        def read():
            assert self.server is not None and self.server.stdout is not None
            for line in self.server.stdout:
                self.server_output.append(line)
                for key, prefix in (("portal", "eidportal listening on http://"),
                                    ("app", "eidportal app listening on http://")):
                    if line.startswith(prefix):
                        found[key] = line[len(prefix):].strip()
                if len(found) == 2:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120) or len(found) != 2:
            raise SystemExit("FAIL: the server block did not print both listening addresses:\n"
                             + "".join(self.server_output) + self.server_log())
        self.portal, self.app = found["portal"], found["app"]
        self.env["EIDPORTAL_LISTEN"] = self.portal
        self.env["EIDPORTAL_APP_LISTEN"] = self.app
        print(f"  the server listens on {self.portal} (the README's {PORTAL}), "
              f"the app on {self.app} (the README's {APP})")
        return f"http://{self.portal}"

    def server_log(self) -> str:
        path = self.work.parent / (self.work.name + "-server.log")
        try:
            return "server log (tail):\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def run(self, block: str, what: str) -> str:
        """Runs one block; fails the step unless it exits 0. Returns its output."""
        script = self.adapt(block)
        print(f"  {what}:\n    $ " + script.strip().replace("\n", "\n    $ "))
        try:
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.work, env=self.env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=120)
            output, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            output, rc = str(e.stdout or ""), None
        print("    | " + output.strip().replace("\n", "\n    | "))
        if rc != 0:
            raise StepFailure(f"the README's block for {what} to exit 0",
                              f"exit status {rc}; output:\n{output.strip()}")
        return output

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()


# ---- the browser ------------------------------------------------------------------------

class TryIt(CloudPortal):
    """The browser steps of the section; the phone's steps are the section's blocks."""

    section: Section
    terminal: Terminal

    def phone_approves(self, code: str) -> None:
        block = self.section.blocks[2].replace(LOGIN_CODE, f"--code {code}")
        self.terminal.run(block, f"the login's approval (the portal's code {code} for `1234`)")

    def phone_approves_operation(self, title: str, evidence: str | None) -> None:
        output = self.terminal.run(self.section.blocks[3], "the issue's approval")
        if title not in output:
            raise StepFailure(f"the phone to show «{title}»", output.strip())

    def open_service(self, entry: str) -> None:
        """услуге -> `entry` (from the account's menu when the header does not show it)."""
        if not self.clickables_by_text(entry):
            if not self.clickables_by_text(W_SERVICES):
                self.click(self.clickable(W_MY_ACCOUNT))
            self.click(self.clickable(W_SERVICES))
        self.click(self.clickable(entry))

    def try_it(self) -> None:
        a = self.args
        self.login()

        self.step = f"{W_CLOUD_CERT}: {W_ISSUE}, {W_ACCEPT}, approved on the phone"
        print(self.step)
        self.click(self.clickable(W_CLOUD_CERT))
        self.issue(self.panel(), ("08-approve-issue.png", "08-phone.txt"))
        self.screenshot("09-issued.png")
        print(f"  «{W_ISSUED}»")

        self.step = "the officer's register: an issued cloud certificate"
        print(self.step)
        listed = self.terminal.run(f"eidportal cert list --email {a.email} --json\n", "cert list")
        certificates = json.loads(listed)
        issued = [c for c in certificates if c.get("kind") == "cloud_signing" and c.get("status") == "issued"]
        if len(issued) != 1:
            raise StepFailure("one issued cloud_signing certificate in `eidportal cert list`", listed)

        self.step = f"{W_SIGN_SERVICE}: {self.section.pdf()}, {W_SIGN_LEVEL}, {W_SIGN_SUBMIT}"
        print(self.step)
        self.open_service(W_SIGN_SERVICE)
        upload = self.wait_for("the file input of the signing form",
                               lambda: self.driver.find_elements(By.CSS_SELECTOR, "input[type=file]"))
        upload[0].send_keys(str(a.repository / self.section.pdf()))
        level = self.wait_for(f"a choice of level starting «{W_SIGN_LEVEL} »",
                              lambda: self.level_choice(W_SIGN_LEVEL))
        self.click(level)
        self.click(self.clickable(W_SIGN_SUBMIT))
        self.wait_for("the signing job's table of documents",
                      lambda: self.driver.find_elements(By.CSS_SELECTOR, "table.documents tbody tr"))
        self.screenshot("10-sign-pending.png")

        self.step = "the signature approved on the phone"
        print(self.step)
        self.terminal.run(self.section.blocks[4], "the signature's approval")
        self.wait_for(f"«{W_SIGNED}» on the job page", lambda: W_SIGNED in self.body_text(), a.timeout)
        self.screenshot("11-signed.png")

        self.step = f"{W_DOWNLOAD}: the signed PDF validates"
        print(self.step)
        downloads = Path(a.screenshots) / "downloads"
        downloads.mkdir(exist_ok=True)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(downloads)})
        self.click(self.clickable(W_DOWNLOAD))
        # Chromium writes `NAME.crdownload` and renames it when complete: a .pdf is whole.
        signed = self.wait_for(
            "a downloaded .pdf",
            lambda: [p for p in downloads.glob("*.pdf") if p.stat().st_size > 0],
            a.timeout,
        )[0]
        print(f"  downloaded {signed.name} ({signed.stat().st_size} bytes)")
        self.validate(signed)

    def level_choice(self, word: str):
        """The visible label (or its control) whose words start with `word` and a space."""
        lit = f"'{word} '"
        els = self._displayed(self.driver.find_elements(
            By.XPATH, f"//label[starts-with(normalize-space(), {lit})]"))
        return els[0] if els else None

    def validate(self, signed: Path) -> None:
        """pyHanko with revocation data from the running server, its root the only anchor."""
        der = urllib.request.urlopen(f"{self.args.url}/pki/root.crt", timeout=30).read()  # noqa: S310
        root = signed.parent / "root.pem"
        body = base64.encodebytes(der).decode()
        root.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
        pyhanko = Path(sys.executable).with_name("pyhanko")
        p = subprocess.run([str(pyhanko), "sign", "validate", "--trust", str(root), "--trust-replace",
                            "--force-revinfo", str(signed)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        print("  pyhanko sign validate: " + p.stdout.strip().replace("\n", "\n    "))
        if p.returncode != 0 or "INTACT:TRUSTED" not in p.stdout \
                or "TIMESTAMP_TOKEN<INTACT:TRUSTED>" not in p.stdout:
            raise StepFailure("pyhanko: INTACT:TRUSTED and TIMESTAMP_TOKEN<INTACT:TRUSTED>",
                              f"exit status {p.returncode}: {p.stdout.strip()}")


def browse(args: argparse.Namespace) -> int:
    """portal.drive's lifecycle without its PIN file (the PIN is in the section's commands)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} not found")
            return 1
    Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    user_data_dir = tempfile.mkdtemp(prefix="eidportal-e2e-try-it-")
    browser = None
    started = time.monotonic()
    try:
        try:
            browser = TryIt(args, user_data_dir)
        except WebDriverException as e:
            print(f"FAIL: could not start Chromium through ChromeDriver: {e.msg}")
            return 1
        try:
            browser.try_it()
        except (StepFailure, WebDriverException) as e:
            browser.report_failure(e)
            return 1
        print(f"all steps done in {time.monotonic() - started:.1f} s")
        print("PASS")
        return 0
    finally:
        if browser is not None:
            browser.quit()
        shutil.rmtree(user_data_dir, ignore_errors=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", required=True, help="the repository's README.md")
    p.add_argument("--eidportal", required=True, help="the eidportal binary")
    p.add_argument("--consentid", required=True, help="the consentid binary")
    p.add_argument("--work", required=True, help="an empty folder: the newcomer's working folder")
    p.add_argument("--screenshots", required=True, help="folder for screenshots and the download")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the portal (default 30)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.repository = Path(args.readme).resolve().parent
    section = Section(Path(args.readme))
    section.check(args.repository)
    terminal = Terminal(args)
    # What the login (portal.py) reads besides these is filled in from the section.
    args.email = section.flag("email")
    args.expect_name = f"{section.flag('given-name')} {section.flag('surname')}"
    args.expect_jmbg = section.flag("jmbg")
    args.account_heading = None
    args.trust_spki = None
    args.consentid_home = args.pin_file = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print("1. the server block")
        args.url = terminal.start_server(section.blocks[0], args.repository)
        print("2. the enrolment block")
        try:
            terminal.run(section.blocks[1], "enrol and activate")
        except StepFailure as e:
            print(f"FAIL: {e.expected}\n  {e.detail}")
            return 1
        png = terminal.work / "activate.png"
        if "--qr activate.png" in section.blocks[1] and not png.read_bytes().startswith(b"\x89PNG"):
            print("FAIL: `--qr activate.png` wrote no PNG")
            return 1
        TryIt.section, TryIt.terminal = section, terminal
        rc = browse(args)
        if rc != 0:
            print("".join(terminal.server_output[-20:]) + terminal.server_log())
        return rc
    finally:
        terminal.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

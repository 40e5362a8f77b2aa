#!/usr/bin/env python3
"""The qualified certificate in the cloud through the eID portal, as a citizen does it (seed guide, steps 2-13).

Logs in exactly as login.py does (steps 2-7, the `consentid` command-line app approving as the
phone, screenshots 01-07), then goes on by the *visible Serbian words* of the guide:

  8. **услуге** -> **Квалификовани електронски сертификат у клауду**: the panel
     **Управљај квалификованим електронским сертификатом у клауду** with **Издај** (enabled),
     **Обнови** and **Опозови** (disabled), **Опозови све сертификате**      08-service-page.png
  9. **Издај** -> the agreement ("УГОВОР О ПРУЖАЊУ УСЛУГЕ ...", the user's name and JMBG)
     with **Прихвати** and **Одустани**                                       09-agreement.png
     **Одустани** -> back on the service page, no certificate; **Издај** -> **Прихвати**
     -> the portal waits for the phone ("Потврдите у апликацији ConsentID") 09b-approve-issue.png
     -> the phone shows the operation, the agreement's number and fingerprint, and approves
        (PIN, Ауторизовати)                                        09c-phone-approves-issue.txt
     (**Опозови** and **Опозови све сертификате** below are approved on the phone the same way)
 10. **✓ Успешно је издат сертификат за потпис у клауду**, **Статус корисничког налога:**
     **Квалификовани електронски сертификат у клауду је активан.**; **Обнови** disabled,
     "Обнова је могућа од ..."                                                  10-issued.png
 11. the agreement e-mail in --outbox (.eml), its PDF attachment           11-agreement.pdf
     (first page: pdftoppm -png -r 70 -f 1 -l 1)                       11-agreement-page1.png
 12. **Опозови** -> **Да, опозови** -> revoked, ConsentID stays active      12-revoked.png
     then **Издај** -> **Прихвати** again (a new certificate)
 13. **Опозови све сертификате** -> the confirmation says ConsentID will no longer be
     active                                                           13-revoke-all-confirm.png
     -> **Да, опозови** -> all certificates revoked                         13b-revoked-all.png
     phone: consentid --home PHONE_HOME status --json -> "state": "deactivated"
                                                                    13c-consentid-status.txt

Prints PASS and exits 0, or prints what was expected and what the page showed, saves
failure.png and failure.html into --screenshots, and exits 1.

Usage:
  python scripts/e2e/cloud.py --url http://127.0.0.1:PORT --email E --consentid BIN \\
      --consentid-home DIR --pin-file FILE --outbox DATA/outbox --screenshots DIR \\
      [--expect-name "Петар Петровић"] [--expect-jmbg 0101990710008]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import shutil
import subprocess
import sys
from pathlib import Path

# The shared browser code lives beside this file (also under `python -P` / PYTHONSAFEPATH).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal import (  # noqa: E402
    W_CLOUD_CERT,
    W_LOGIN,
    By,
    Portal,
    StepFailure,
    WebElement,
    add_login_arguments,
    drive,
    norm,
    xpath_literal,
)

# The guide's words (seed README, steps 8-13).
W_PANEL = "Управљај квалификованим електронским сертификатом у клауду"
W_ISSUE = "Издај"
W_RENEW = "Обнови"
W_REVOKE = "Опозови"
W_REVOKE_ALL = "Опозови све сертификате"
W_AGREEMENT_TITLE = "УГОВОР О ПРУЖАЊУ УСЛУГЕ"
W_ACCEPT = "Прихвати"
W_CANCEL = "Одустани"
W_ISSUED = "✓ Успешно је издат сертификат за потпис у клауду"
W_STATUS = "Статус корисничког налога:"
W_ACTIVE = "Квалификовани електронски сертификат у клауду је активан."
# The portal's words where the guide gives none.
W_RENEWAL_OPENS = "Обнова је могућа од"
W_YES_REVOKE = "Да, опозови"
W_REVOKED = "опозван"
W_CONSENTID_STAYS = "ConsentID остаје активна"
W_CONSENTID_ENDS = "ConsentID више неће бити активна"
W_REVOKED_ALL = "Сви ваши сертификати су опозвани"
# Each certificate operation waits for its own approval in ConsentID (issue 22).
W_APPROVE_IN_APP = "Потврдите у апликацији ConsentID"
W_OPERATION_ISSUE = "Издавање квалификованог електронског сертификата у клауду"
W_OPERATION_REVOKE = "Опозив квалификованог електронског сертификата у клауду"
W_OPERATION_REVOKE_ALL = "Опозив свих сертификата"

PANEL_BUTTONS = (W_ISSUE, W_RENEW, W_REVOKE, W_REVOKE_ALL)


class CloudPortal(Portal):
    # ---- what the pages show -------------------------------------------------------------

    def main_text(self) -> str:
        """The visible words of <main> (the whole body if the page has none), normalized."""
        els = self._displayed(self.driver.find_elements(By.TAG_NAME, "main"))
        return norm(els[0].text if els else self.body_text())

    def element_with_all(self, *texts: str) -> WebElement | None:
        """The innermost visible element whose words contain every one of `texts`."""
        cond = " and ".join(f"contains(normalize-space(), {xpath_literal(t)})" for t in texts)
        els = self._displayed(self.driver.find_elements(By.XPATH, f"//body//*[{cond}][not(*[{cond}])]"))
        return els[0] if els else None

    def wait_text(self, *texts: str) -> WebElement:
        return self.wait_for(
            "a visible element reading " + " … ".join(f"«{t}»" for t in texts),
            lambda: self.element_with_all(*texts),
        )

    def has_words(self, text: str) -> bool:
        """`text` is among the page's visible words (case-insensitive)."""
        return norm(text).lower() in norm(self.body_text()).lower()

    @staticmethod
    def enabled(el: WebElement) -> bool:
        return el.is_enabled() and (el.get_attribute("aria-disabled") or "").lower() != "true"

    def panel(self) -> dict[str, WebElement]:
        """Waits for the management panel and its four buttons; returns them by their words."""
        self.wait_for(f"the panel «{W_PANEL}»", lambda: self.visible_text_element(W_PANEL))

        def buttons():
            found = {}
            for text in PANEL_BUTTONS:
                els = self.clickables_by_text(text)
                if not els:
                    return None
                found[text] = els[0]
            return found

        found = self.wait_for(
            "the buttons " + ", ".join(f"«{t}»" for t in PANEL_BUTTONS) + f" in the panel «{W_PANEL}»",
            buttons,
        )
        self.settled()
        return found

    def expect_buttons(self, buttons: dict[str, WebElement], want: dict[str, bool], when: str) -> None:
        have = {text: self.enabled(el) for text, el in buttons.items()}
        shown = ", ".join(f"«{t}» {'enabled' if on else 'disabled'}" for t, on in have.items())
        print(f"  buttons: {shown}")
        wrong = [t for t, on in want.items() if have[t] != on]
        if wrong:
            raise StepFailure(
                f"{when}: " + ", ".join(f"«{t}» {'enabled' if want[t] else 'disabled'}" for t in want),
                f"the page has {shown}",
            )

    def no_certificate(self, buttons: dict[str, WebElement], when: str) -> None:
        if self.has_words(W_ACTIVE):
            raise StepFailure(f"{when}: no active certificate", f"the page says «{W_ACTIVE}»")
        self.expect_buttons(buttons, {W_ISSUE: True, W_RENEW: False, W_REVOKE: False}, when)

    # ---- the agreement -------------------------------------------------------------------

    def agreement_page(self) -> tuple[WebElement, WebElement]:
        """Waits for the agreement with Прихвати and Одустани; checks the name and JMBG."""
        a = self.args
        lit = xpath_literal(W_AGREEMENT_TITLE)
        self.wait_for(
            f"the agreement: visible text starting «{W_AGREEMENT_TITLE}»",
            lambda: self._displayed(self.driver.find_elements(
                By.XPATH, f"//body//*[starts-with(normalize-space(), {lit})]")),
        )
        accept = self.clickable(W_ACCEPT)
        cancel = self.clickable(W_CANCEL)
        self.settled()
        text = self.main_text()
        agreement = text[text.find(W_AGREEMENT_TITLE):]
        print(f"  agreement: «{agreement[:110]} …» ({len(agreement)} characters)")
        for label, want in (("the user's name", a.expect_name), ("the user's JMBG", a.expect_jmbg)):
            if want and norm(want) not in agreement:
                raise StepFailure(f"{label} «{want}» in the agreement's text", f"the agreement reads: {agreement[:600]}")
        return accept, cancel

    def issue(self, buttons: dict[str, WebElement], shots: tuple[str, str] | None = None) -> None:
        """Издај -> the agreement -> Прихвати -> approved on the phone -> the success message."""
        self.click(buttons[W_ISSUE])
        accept, _ = self.agreement_page()
        self.click(accept)
        self.operation_approved(W_OPERATION_ISSUE, shots)
        self.wait_text(W_ISSUED)

    def operation_approved(self, title: str, shots: tuple[str, str] | None = None) -> None:
        """The portal waits for the phone («Потврдите у апликацији ConsentID», the operation
        named); nothing has changed yet. The phone shows the request and approves it with the
        PIN; the portal then goes on by itself. `shots`: the waiting page's screenshot and the
        phone's text, saved."""
        self.wait_text(W_APPROVE_IN_APP, title)
        self.settled()
        if shots:
            self.screenshot(shots[0])
        self.phone_approves_operation(title, shots[1] if shots else None)

    def phone_approves_operation(self, title: str, evidence: str | None) -> None:
        """The `consentid` command-line app approves the operation named `title`; its output is
        saved as `evidence`. (The web-app test, phone.py, approves in the installed app.)"""
        a = self.args
        pin = Path(a.pin_file).read_text(encoding="utf-8").strip()
        cmd = [a.consentid, "--home", a.consentid_home, "approve", "--next", "--wait", "30", "--pin-stdin"]
        shown = " ".join(["consentid", "--home", "PHONE_HOME"] + cmd[3:])
        print(f"  phone: {' '.join(cmd)}  (PIN on stdin)")
        try:
            p = subprocess.run(cmd, input=pin + "\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=90)
            output, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired:
            output, rc = "", None
        for path in sorted({a.consentid_home, str(Path(a.consentid_home).resolve())}, key=len, reverse=True):
            if "/" in path:
                output = output.replace(path, "PHONE_HOME")
        if evidence:
            out = self.shots / evidence
            out.write_text(f"$ {shown}   # PIN on stdin\n{output}"
                           + ("" if output.endswith("\n") or not output else "\n")
                           + f"# exit status: {rc}\n", encoding="utf-8")
            print(f"  saved {out}")
        if rc != 0 or title not in output:
            raise StepFailure(f"the phone to show «{title}» and approve it (exit 0)",
                              f"exit status {rc}; output:\n{output.strip()}")

    # ---- the phone -----------------------------------------------------------------------

    def phone(self, *args: str) -> tuple[str, str, int | None]:
        """Runs `consentid --home HOME ARGS`; returns (the command as shown, output, exit status)."""
        a = self.args
        cmd = [a.consentid, "--home", a.consentid_home, *args]
        shown = " ".join(["consentid", "--home", "PHONE_HOME", *args])
        print(f"  phone: {' '.join(cmd)}")
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               text=True, timeout=60)
            output, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = None
        except OSError as e:
            output, rc = f"could not run it: {e}\n", None
        # What is written to the repository names no path of this machine.
        for path in sorted({a.consentid_home, str(Path(a.consentid_home).resolve())}, key=len, reverse=True):
            if "/" in path:
                output = output.replace(path, "PHONE_HOME")
        return shown, output, rc

    def phone_state(self, evidence: str | None = None) -> str:
        shown, output, rc = self.phone("status", "--json")
        if evidence:
            path = self.shots / evidence
            path.write_text(
                f"$ {shown}\n{output}" + ("" if output.endswith("\n") or not output else "\n")
                + f"# exit status: {'timed out after 60 s' if rc is None else rc}\n",
                encoding="utf-8",
            )
            print(f"  saved {path}")
        try:
            state = json.loads(output)["state"]
        except (ValueError, KeyError, TypeError):
            raise StepFailure("`consentid status --json` to print JSON with a `state`",
                              f"exit status {rc}; output:\n{output.strip()}") from None
        print(f"  ConsentID state: {state}")
        return str(state)

    # ---- the guide, steps 8-13 -----------------------------------------------------------

    def cloud(self) -> None:
        self.login()

        # Guide step 7 (end): the entry of the open услуге menu; step 13: the panel.
        self.step = f"8. {W_CLOUD_CERT}: the service page, {W_PANEL}"
        print(self.step)
        self.click(self.clickable(W_CLOUD_CERT))
        buttons = self.panel()
        self.screenshot("08-service-page.png")
        self.no_certificate(buttons, "before any certificate")

        # Guide steps 8-9: Издај -> the agreement, Прихвати / Одустани.
        self.step = f"9. {W_ISSUE}: the agreement, {W_ACCEPT} / {W_CANCEL}"
        print(self.step)
        self.click(buttons[W_ISSUE])
        _, cancel = self.agreement_page()
        self.screenshot("09-agreement.png")
        self.click(cancel)
        buttons = self.panel()
        self.no_certificate(buttons, f"after «{W_CANCEL}», back on the service page")
        print(f"  {W_CANCEL}: back on the service page, no certificate")
        self.issue(buttons, ("09b-approve-issue.png", "09c-phone-approves-issue.txt"))

        # Guide steps 10 and 12: the success message, the status, Обнови closed for 5 years.
        self.step = f"10. issued: {W_ISSUED}"
        print(self.step)
        self.wait_text(W_STATUS, W_ACTIVE)
        buttons = self.panel()
        self.screenshot("10-issued.png")
        self.expect_buttons(buttons, {W_RENEW: False, W_REVOKE: True}, "with a new 5-year certificate")
        note = self.wait_for(
            f"the page to say when renewal opens («{W_RENEWAL_OPENS} …»)",
            lambda: self.visible_text_element(W_RENEWAL_OPENS),
        )
        print(f"  «{norm(note.text)}»")

        # Guide step 11: the agreement by e-mail (the server's outbox), a PDF attached.
        self.step = "11. the agreement e-mail (outbox), its PDF"
        print(self.step)
        self.agreement_email()

        # Guide step 13: Опозови -> the cloud certificate only; ConsentID stays.
        self.step = f"12. {W_REVOKE} -> {W_YES_REVOKE}"
        print(self.step)
        self.click(buttons[W_REVOKE])
        self.click(self.clickable(W_YES_REVOKE))
        self.operation_approved(W_OPERATION_REVOKE)
        self.wait_text(W_REVOKED, W_CONSENTID_STAYS)
        buttons = self.panel()
        self.screenshot("12-revoked.png")
        self.no_certificate(buttons, f"after «{W_REVOKE}»")
        state = self.phone_state()
        if state != "active":
            raise StepFailure(f"ConsentID still active after «{W_REVOKE}» (consentid status: state active)",
                              f"state {state}")
        print(f"  {W_ISSUE} -> {W_ACCEPT} again")
        self.issue(buttons)
        self.wait_text(W_STATUS, W_ACTIVE)

        # Guide step 13: Опозови све сертификате -> the cloud certificate and ConsentID's.
        self.step = f"13. {W_REVOKE_ALL} -> {W_YES_REVOKE}"
        print(self.step)
        buttons = self.panel()
        self.click(buttons[W_REVOKE_ALL])
        yes = self.clickable(W_YES_REVOKE)
        self.wait_text(W_CONSENTID_ENDS)
        self.settled()
        self.screenshot("13-revoke-all-confirm.png")
        self.click(yes)
        self.operation_approved(W_OPERATION_REVOKE_ALL)
        self.wait_text(W_REVOKED_ALL)
        # The confirmation said the user would be logged out: the header offers Пријава again.
        self.clickable(W_LOGIN)
        self.settled()
        self.screenshot("13b-revoked-all.png")
        state = self.phone_state("13c-consentid-status.txt")
        if state != "deactivated":
            raise StepFailure(f"ConsentID deactivated after «{W_REVOKE_ALL}» (consentid status: state deactivated)",
                              f"state {state}")

    def agreement_email(self) -> None:
        a = self.args
        outbox = Path(a.outbox)

        def attached_pdf():
            """The PDF attached to the newest `.eml` addressed to the user that has one."""
            files = []
            for path in outbox.glob("*.eml"):
                try:
                    files.append((path.stat().st_mtime, path))
                except OSError:
                    pass
            for _, path in sorted(files, reverse=True):
                try:
                    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                except (OSError, ValueError):
                    continue  # still being written
                if a.email.lower() not in str(message.get("To", "")).lower():
                    continue
                for part in message.walk():
                    if part.get_content_type() == "application/pdf":
                        data = part.get_payload(decode=True) or b""
                        if data.startswith(b"%PDF"):
                            return message, data
            return None

        message, pdf = self.wait_for(
            f"a .eml message to {a.email} with a PDF attachment in the outbox",
            attached_pdf,
            timeout=a.timeout,
        )
        print(f"  e-mail: Subject: {message.get('Subject')}")
        out = self.shots / "11-agreement.pdf"
        out.write_bytes(pdf)
        print(f"  saved {out} ({len(pdf)} bytes)")
        p = subprocess.run(["pdftotext", "-enc", "UTF-8", str(out), "-"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        text = norm(p.stdout.decode("utf-8", "replace"))
        for label, want in (("the title", W_AGREEMENT_TITLE), ("the user's name", a.expect_name),
                            ("the user's JMBG", a.expect_jmbg)):
            if want and norm(want) not in text:
                raise StepFailure(f"{label} «{want}» in the attached agreement (pdftotext)",
                                  f"pdftotext exit status {p.returncode}; text: {text[:600]}")
        page1 = self.shots / "11-agreement-page1"
        p = subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile", str(out), str(page1)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        png = page1.with_suffix(".png")
        if p.returncode != 0 or not png.is_file():
            raise StepFailure("pdftoppm to render the agreement's first page",
                              f"exit status {p.returncode}: {p.stdout.strip()}")
        print(f"  saved {png}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_login_arguments(p)
    p.add_argument("--outbox", required=True,
                   help="the server's outbox folder (<data>/outbox), where the agreement e-mail lands")
    p.add_argument("--expect-jmbg", help="the user's JMBG the agreement must show")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            print(f"FAIL: {tool} not found: install the Debian package poppler-utils")
            return 1
    return drive(args, CloudPortal.cloud, CloudPortal)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

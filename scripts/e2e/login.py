#!/usr/bin/env python3
"""End-to-end login through the eID portal, as a citizen does it (seed guide, steps 2-7).

Drives headless Chromium (Selenium, /usr/bin/chromedriver + /usr/bin/chromium) through the
portal by the *visible Serbian words* of the guide, with the `consentid` command-line app
standing in for the phone:

  1. `/`                      -> link **Пријава** (top right)           01-home.png
  2. login methods            -> **Мобилна апликација**                  02-login-methods.png
  3. username page            -> field **корисничко име**, **Пријавите се** 03-username.png
  4. waiting page             -> code in [data-testid=verification-code] 04-waiting-code.png
     phone: BIN --home DIR approve --next --wait 30 --code CODE --pin-stdin
                                                                      05-phone-approves.txt
  5. account page (/account)  -> name, e-mail, **услуге**                06-account.png
                                                                      06b-account-phone.png
  6. **услуге**               -> **Квалификовани електронски сертификат у клауду**
                                                                      07-services-menu.png

Prints PASS and exits 0, or prints what was expected and what the page showed, saves
failure.png and failure.html into --screenshots, and exits 1.

Usage:
  python scripts/e2e/login.py --url http://127.0.0.1:PORT --email E --consentid BIN \\
      --consentid-home DIR --pin-file FILE --screenshots DIR [--expect-name "Петар Петровић"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The shared browser code lives beside this file (also under `python -P` / PYTHONSAFEPATH).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal import Portal, add_login_arguments, drive  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_login_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    return drive(parse_args(argv), Portal.login)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

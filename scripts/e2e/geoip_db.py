#!/usr/bin/env python3
"""Writes a small GeoIP2-City database for the tests (issue 22): where the browser is.

The tests' browsers and phones are on this computer, so the database places loopback
networks, in the layout of MaxMind's GeoIP2 City (names by language, Serbian where a national
database would have it):

  127.0.0.0/24   Нови Сад, Србија   (Novi Sad, Serbia)     the portal's browser
  127.0.1.0/24   Београд, Србија    (Belgrade, Serbia)     a phone on another network
  ::1/128        Serbia only (a record without a city)

Written with mmdb-writer (PyPI), read by the server with the maxminddb crate: two
implementations of the MaxMind DB format that do not share code.

Usage: python scripts/e2e/geoip_db.py OUT.mmdb
"""

from __future__ import annotations

import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

SERBIA = {"iso_code": "RS", "names": {"sr": "Србија", "en": "Serbia", "de": "Serbien"}}


def city(sr: str, en: str) -> dict:
    return {"city": {"names": {"sr": sr, "en": en}}, "country": SERBIA}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City",
                        languages=["sr", "en", "de"],
                        description={"sr": "Места за тестове eidportal-а",
                                     "en": "eidportal test locations",
                                     "de": "eidportal Testorte"})
    writer.insert_network(IPSet(["127.0.0.0/24"]), city("Нови Сад", "Novi Sad"))
    writer.insert_network(IPSet(["127.0.1.0/24"]), city("Београд", "Belgrade"))
    writer.insert_network(IPSet(["::1/128"]), {"country": SERBIA})
    writer.to_db_file(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

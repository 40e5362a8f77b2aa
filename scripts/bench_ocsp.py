#!/usr/bin/env python3
"""Helpers for `scripts/bench ocsp` (standard library only).

  certs ISSUED LIST OUT_TSV        merge `cert issue --json` and `cert list --json`
                                   output into "SERIAL<TAB>NOT_AFTER(RFC 3339)" lines
  fake-certs N OUT_TSV             N random serials (for --selftest)
  index CERTS_TSV OUT_INDEX        OpenSSL CA index.txt (all certificates valid)
  paths CERTS_TSV REQ_DIR OUT_DIR  GET paths (one per line) for the three servers:
                                   OUT_DIR/{eidportal,openssl,nginx}.paths and a
                                   curl config OUT_DIR/fetch.curl for the warm-up fetch
  result NAME WRK_LOG OUT_JSON     extract the numbers of one wrk run (printed by
                                   scripts/wrk-paths.lua as a "BENCH_RESULT {json}" line)
  report RESULT_JSON...            print the table, ratios and targets; exit 0
"""

import base64
import datetime as dt
import json
import os
import secrets
import sys
import urllib.parse

TARGETS = {
    "vs_openssl": 5.0,  # eidportal responses/s >= 5x openssl ocsp
    "vs_nginx": 0.4,  # eidportal responses/s >= 0.4x nginx serving the same bytes
    "p99_ms": 5.0,  # eidportal p99 latency <= 5 ms
}


def norm_serial(s):
    """Hex serial in any common spelling -> OpenSSL's BN_bn2hex spelling:
    upper case, no leading zero bytes, an even number of digits."""
    s = str(s).strip().lower().replace(":", "").replace(" ", "")
    if s.startswith("0x"):
        s = s[2:]
    v = int(s, 16)
    h = format(v, "X")
    return ("0" + h) if len(h) % 2 else h


def read_json_objects(path):
    """A JSON array, a single object, or one object per line (other lines ignored)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return [o for o in data if isinstance(o, dict)]
        if isinstance(data, dict):
            return [data]
    except json.JSONDecodeError:
        pass
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def cmd_certs(issued_path, list_path, out_path):
    issued = read_json_objects(issued_path)
    if not issued:
        sys.exit(f"no JSON objects with a serial in {issued_path}")
    listed = {}
    for o in read_json_objects(list_path):
        if "serial" in o:
            listed[norm_serial(o["serial"])] = o
    rows = []
    for o in issued:
        serial = norm_serial(o["serial"])
        not_after = o.get("not_after") or listed.get(serial, {}).get("not_after")
        if not not_after:
            sys.exit(f"serial {serial}: no not_after in `cert issue` nor `cert list` output")
        rows.append((serial, not_after))
    with open(out_path, "w", encoding="utf-8") as f:
        for serial, not_after in rows:
            f.write(f"{serial}\t{not_after}\n")
    missing = sum(1 for s, _ in rows if s not in listed)
    print(f"{len(rows)} certificates ({missing} of them not in `cert list`)")


def cmd_fake_certs(n, out_path):
    na = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5 * 365)).replace(microsecond=0)
    with open(out_path, "w", encoding="utf-8") as f:
        for _ in range(int(n)):
            serial = norm_serial(secrets.token_hex(16))
            f.write(f"{serial}\t{na.isoformat().replace('+00:00', 'Z')}\n")


def read_certs(path):
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]


def openssl_time(rfc3339):
    t = dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    # RFC 5280 / OpenSSL index: UTCTime up to 2049, GeneralizedTime from 2050.
    return t.strftime("%y%m%d%H%M%SZ" if t.year < 2050 else "%Y%m%d%H%M%SZ")


def cmd_index(certs_path, out_path):
    with open(out_path, "w", encoding="utf-8") as f:
        for serial, not_after in read_certs(certs_path):
            # status, expiry, revocation date (empty), serial, file name, subject.
            # The subject is informational only; a unique one per line keeps
            # OpenSSL's unique_subject check quiet.
            f.write(f"V\t{openssl_time(not_after)}\t\t{serial}\tunknown\t/CN=bench-{serial}\n")
    with open(out_path + ".attr", "w", encoding="utf-8") as f:
        f.write("unique_subject = no\n")


def ocsp_get_component(der):
    """RFC 6960 Appendix A.1: base64 of the DER request, then URL-encoded."""
    return urllib.parse.quote(base64.b64encode(der).decode("ascii"), safe="")


def cmd_paths(certs_path, req_dir, out_dir, eid_prefix="/ocsp/"):
    certs = read_certs(certs_path)
    files = {name: open(os.path.join(out_dir, f"{name}.paths"), "w", encoding="utf-8")
             for name in ("eidportal", "openssl", "nginx")}
    curl = open(os.path.join(out_dir, "fetch.curl"), "w", encoding="utf-8")
    for serial, _ in certs:
        with open(os.path.join(req_dir, f"{serial}.der"), "rb") as f:
            comp = ocsp_get_component(f.read())
        files["eidportal"].write(f"{eid_prefix}{comp}\n")
        # `openssl ocsp` takes the whole path after the first "/" as the request.
        files["openssl"].write(f"/{comp}\n")
        files["nginx"].write(f"/ocsp-static/{serial}\n")
        # curl config for the warm-up fetch: one URL per serial, body to a file
        # named by the serial (BENCH_BASE and STATIC are filled in by the shell).
        curl.write(f'url = "BENCH_BASE{eid_prefix}{comp}"\noutput = "STATIC/{serial}"\n')
    for f in list(files.values()) + [curl]:
        f.close()
    print(f"{len(certs)} GET paths per server")


def cmd_result(name, log_path, out_path):
    res = None
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("BENCH_RESULT "):
                res = json.loads(line[len("BENCH_RESULT "):])
    if res is None:
        sys.exit(f"{log_path}: no BENCH_RESULT line (did wrk run?)")
    if res["requests"] == 0:
        sys.exit(f"{name}: wrk got no response at all ({log_path})")
    secs = res["duration_us"] / 1e6
    out = {
        "name": name,
        "requests": res["requests"],
        "seconds": round(secs, 3),
        "rps": res["requests"] / secs if secs else 0.0,
        "p50_ms": res["p50_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "max_ms": res["max_us"] / 1000,
        "non_2xx": res["status"],
        "socket_errors": res["connect"] + res["read"] + res["write"] + res["timeout"],
        "errors": {k: res[k] for k in ("connect", "read", "write", "timeout", "status")},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


def cmd_report(*paths):
    rows = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            r = json.load(f)
        rows[r["name"]] = r
    print(f"{'server':<26}{'responses/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'non-2xx':>9}{'sock.err':>9}")
    for r in rows.values():
        print(f"{r['name']:<26}{r['rps']:>12.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['max_ms']:>9.2f}{r['non_2xx']:>9}{r['socket_errors']:>9}")
    eid = rows.get("eidportal")
    if eid is None:
        return
    print()

    def line(label, value, target, ok, fmt):
        print(f"{label:<34}{fmt.format(value):>10}   target {target:<10} {'PASS' if ok else 'MISS'}")

    clean = eid["non_2xx"] == 0 and eid["socket_errors"] == 0
    if "openssl ocsp" in rows and rows["openssl ocsp"]["rps"]:
        v = eid["rps"] / rows["openssl ocsp"]["rps"]
        line("eidportal / openssl ocsp", v, f">= {TARGETS['vs_openssl']:g}x", v >= TARGETS["vs_openssl"], "{:.2f}x")
    if "nginx (same bytes)" in rows and rows["nginx (same bytes)"]["rps"]:
        v = eid["rps"] / rows["nginx (same bytes)"]["rps"]
        line("eidportal / nginx", v, f">= {TARGETS['vs_nginx']:g}x", v >= TARGETS["vs_nginx"], "{:.2f}x")
    line("eidportal p99 latency", eid["p99_ms"], f"<= {TARGETS['p99_ms']:g} ms", eid["p99_ms"] <= TARGETS["p99_ms"], "{:.2f} ms")
    line("eidportal errors (non-2xx+socket)", eid["non_2xx"] + eid["socket_errors"], "0", clean, "{}")


def main(argv):
    cmds = {
        "certs": cmd_certs, "fake-certs": cmd_fake_certs, "index": cmd_index,
        "paths": cmd_paths, "result": cmd_result, "report": cmd_report,
    }
    if len(argv) < 2 or argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""Checks that every pingora metric the shipped Grafana dashboard and Prometheus alert
rules use exists in a live /metrics.

    tools/check-deploy-metrics.py http://127.0.0.1:9901/metrics [FILE...]

FILEs default to deploy/grafana/*.json and deploy/prometheus/*.yaml. Names are taken
from every `pingora_...` word in the files (histogram series such as `..._bucket`
included) and compared with the sample names of the scrape. A series that exists only
with a feature (a cache, an upstream) must be there: scrape a server configured with
them. Exit 0 when all exist; 1 listing the missing ones; 2 when the scrape fails.
Standard library only.
"""

import glob
import os
import re
import sys
import urllib.request

NAME = re.compile(r"\bpingora_[a-z0-9_]*[a-z0-9]")


def used_names(paths):
    """{name: [files using it]}"""
    used = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for name in NAME.findall(f.read()):
                used.setdefault(name, set()).add(path)
    return used


def exposed_names(text):
    names = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    url = argv[1]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    paths = argv[2:] or sorted(
        glob.glob(os.path.join(root, "deploy", "grafana", "*.json"))
        + glob.glob(os.path.join(root, "deploy", "prometheus", "*.yaml"))
    )
    if not paths:
        print("check-deploy-metrics: no dashboard or rule file found", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode("utf-8")
    except Exception as e:  # noqa: BLE001 - any failure to scrape is reported as such
        print(f"check-deploy-metrics: cannot scrape {url}: {e}", file=sys.stderr)
        return 2
    exposed = exposed_names(text)
    used = used_names(paths)
    missing = {n: files for n, files in used.items() if n not in exposed}
    for name in sorted(missing):
        where = ", ".join(sorted(os.path.relpath(p) for p in missing[name]))
        print(f"missing from {url}: {name} (used in {where})")
    print(f"check-deploy-metrics: {len(used) - len(missing)} of {len(used)} metric names found in {len(paths)} files")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

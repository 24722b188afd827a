#!/usr/bin/python3
"""Put each bench's latest summary (bench/results/NAME-latest.md, written by
the bench itself through report.publish) into docs/status.md, between the
markers <!-- bench:NAME --> and <!-- /bench:NAME -->. run_bench.sh calls
it after every run; by hand: python3 bench/lib/status_tables.py."""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATUS = os.path.join(ROOT, "docs", "status.md")


def main():
    with open(STATUS) as f:
        doc = f.read()
    changed = []
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*-latest.md"))):
        name = os.path.basename(path)[:-len("-latest.md")]
        begin, end = "<!-- bench:%s -->" % name, "<!-- /bench:%s -->" % name
        if begin not in doc or end not in doc:
            print("status_tables: docs/status.md has no %s ... %s: bench/%s left out" % (begin, end, name),
                  file=sys.stderr)
            continue
        with open(path) as f:
            body = f.read().strip()
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: begin + "\n" + body + "\n" + end, doc,
                     flags=re.S)
        if new != doc:
            doc = new
            changed.append(name)
    if changed:
        tmp = STATUS + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, STATUS)
        print("status_tables: docs/status.md now shows bench/%s" % ", bench/".join(changed))


if __name__ == "__main__":
    main()

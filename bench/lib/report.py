"""The last thing a bench prints: its summary as a markdown table, also
saved as bench/results/NAME-latest.md with the date, the build and where it
ran. bench/lib/status_tables.py puts those files into docs/status.md, so the
benchmark section there is made from the results, never copied by hand."""
import datetime
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "bench", "results")


def build():
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                               text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def where():
    """run_bench.sh says where the bench runs (BENCH_WHERE)."""
    return {"rig": "the nested rig (an L1 under QEMU TCG: read the ratios)",
            "direct": "this host's KVM"}.get(os.environ.get("BENCH_WHERE", ""), "unknown")


def table(head, rows):
    """A markdown table: head is a list of column names, rows lists of cells."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def publish(name, title, lines, notes=""):
    """Print the summary and save it as bench/results/NAME-latest.md."""
    date = datetime.date.today().isoformat()
    raw = os.environ.get("BENCH_RAW", "")
    text = ["**bench/%s**: %s" % (name, title), "",
            "%s, build %s, in %s%s." % (date, build(), where(),
                                        "; raw output `%s`" % os.path.relpath(raw, ROOT) if raw else ""), ""]
    text += lines
    if notes:
        text += ["", notes]
    print("\n" + "\n".join(text), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    tmp = os.path.join(RESULTS, ".%s-latest.md.tmp" % name)
    with open(tmp, "w") as f:
        f.write("\n".join(text) + "\n")
    os.replace(tmp, os.path.join(RESULTS, "%s-latest.md" % name))

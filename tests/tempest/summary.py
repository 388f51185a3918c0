"""Summarise a Tempest (stestr) run from its subunit stream on stdin; runs in .venv-tempest.

    stestr last --subunit | python summary.py [--known-failures FILE] [--allowed-skips FILE] [--summary-file OUT]

Prints passed / failed / skipped (per suite: Tempest's own tests, glance-tempest-plugin), every skip with
its reason, every failure with its test id and first error line. With --known-failures (one test-id regex a
line, `# reason` after it), a failure that no line matches is NEW and makes the exit status 1; a listed
test that passed is reported so the list can shrink. With --allowed-skips (one regex a line, searched in
"TEST_ID: REASON", `# why` after it), a skip that no line matches is UNEXPECTED and makes the exit status 1.
"""

import argparse
import collections
import re
import sys

import subunit
import testtools

ATTRS = re.compile(r"\[[^\]]*\]$")


def read_results(stream):
    tests = {}

    def on_test(test):
        tests[test["id"]] = test

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout").run(result)
    result.stopTestRun()
    return tests


def detail(test, name):
    content = test["details"].get(name)
    return content.as_text() if content is not None else ""


def first_error_line(traceback):
    """The exception line of the last traceback (with the Details: line Tempest adds, if any)."""
    lines = traceback.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    tail = lines[starts[-1] + 1:] if starts else lines
    picked = [line for line in tail if line and not line.startswith(" ")][:2]
    text = " | ".join(picked) if picked else (lines[-1] if lines else "")
    return text[:400]


def suite(test_id):
    return "glance-tempest-plugin" if test_id.startswith("glance_tempest_plugin") else "tempest"


def load_patterns(path):
    known = []
    for raw in open(path, encoding="utf-8"):
        pattern, _, reason = raw.partition("#")
        pattern = pattern.strip()
        if pattern:
            known.append((re.compile(pattern), reason.strip()))
    return known


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--known-failures")
    ap.add_argument("--allowed-skips")
    ap.add_argument("--summary-file")
    args = ap.parse_args()
    tests = read_results(sys.stdin.buffer)
    known = load_patterns(args.known_failures) if args.known_failures else None
    allowed = load_patterns(args.allowed_skips) if args.allowed_skips else None

    counts = collections.defaultdict(collections.Counter)
    out = []
    skips, fails, passes = [], [], []
    for test_id, test in sorted(tests.items()):
        name = ATTRS.sub("", test_id)
        status = test["status"]
        if status in ("success", "xfail"):
            counts[suite(name)]["passed"] += 1
            passes.append(name)
        elif status == "skip":
            counts[suite(name)]["skipped"] += 1
            skips.append((name, detail(test, "reason").strip() or "(no reason given)"))
        elif status in ("fail", "uxsuccess"):
            counts[suite(name)]["failed"] += 1
            fails.append((name, first_error_line(detail(test, "traceback") or detail(test, "reason"))))

    out.append("== skipped ==")
    unexpected = []
    for name, reason in skips:
        tag = ""
        if allowed is not None:
            whys = [why for pattern, why in allowed if pattern.search(f"{name}: {reason}")]
            tag = f" [allowed: {whys[0]}]" if whys else " [UNEXPECTED]"
            if not whys:
                unexpected.append(name)
        out.append(f"SKIP {name}: {reason}{tag}")
    out.append("== failed ==")
    new = []
    for name, error in fails:
        tag = ""
        if known is not None:
            reasons = [reason for pattern, reason in known if pattern.search(name)]
            tag = f" [known: {reasons[0]}]" if reasons else " [NEW]"
            if not reasons:
                new.append(name)
        out.append(f"FAIL {name}{tag}: {error}")
    if known is not None:
        now_pass = sorted({pattern.pattern for pattern, _ in known for name in passes if pattern.search(name)})
        out.append("== listed in known-failures but passed (remove them) ==")
        out.extend(f"PASSES NOW {p}" for p in now_pass)
    out.append("== summary ==")
    total = collections.Counter()
    for name in ("tempest", "glance-tempest-plugin"):
        c = counts[name]
        total.update(c)
        out.append(f"{name} - passed {c['passed']}, failed {c['failed']}, skipped {c['skipped']}")
    if known is not None:
        out.append(f"new failures (not in known-failures): {len(new)}")
    if allowed is not None:
        out.append(f"unexpected skips (not in allowed-skips): {len(unexpected)}")
    # (not in the "N passed, N failed" form: known failures must not read as a failed CI step)
    out.append(f"all - passed {total['passed']}, failed {total['failed']}, skipped {total['skipped']}")
    text = "\n".join(out)
    print(text)
    if args.summary_file:
        with open(args.summary_file, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if not tests:
        print("no test ran", file=sys.stderr)
        return 1
    return 1 if new or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())

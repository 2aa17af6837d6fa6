"""Runs the compatibility suite: every case on Redis and on Ketch, side by side.

Usage (tests/e2e_redis_compat.rs runs it; it can also be run by hand against any two
servers, which must be disposable: cases run FLUSHALL):

    python3 tests/compat/driver.py --redis 127.0.0.1:6379 --ketch 127.0.0.1:7001 \
        [--ketch-follower 127.0.0.1:7002] --out DIR [--only SUBSTRING]

Result ids are `<case>@<variant>`:
  <raw case>@resp2      the case's commands on a fresh connection (RESP2)
  <raw case>@resp3      the same after `HELLO 3` on each connection
  <raw case>@follower   RESP2 again, Ketch's side on a follower (forwarding), for the cases
                        marked `follower=True`
  py.<scenario>@resp3   a redis-py workload with redis-py's default settings (RESP3)
  py.<scenario>@resp2   the same with `protocol=2`

Output, in DIR:
  results.txt   one line per result id: `<id>\tsame` or `<id>\tdiffers`
  report.txt    per result id, a block starting `#### <id>`: each command with Redis' reply
                and Ketch's (canonical forms when a normalizer applies), differing steps
                marked `!=`

The verdict (what may differ) is not decided here: tests/e2e_redis_compat.rs checks the
results against known_differences.txt. Exit status 0 means every case ran, whatever it found.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import normalize  # noqa: E402
import raw_cases  # noqa: E402
from resp_raw import RawConnection  # noqa: E402

#: Replies longer than this are cut in the report (COMMAND DOCS is large).
REPORT_REPLY_CHARS_MAX = 400

#: SCAN-family iterations stop here: a server whose cursor never returns to 0 must not hang
#: the suite (a few hundred keys need a few dozen calls).
SCAN_CALLS_MAX = 1000

NOT_SUPPORTED_TEXT = "not supported by ketch"

#: Part of every key prefix, so that a second run against the same (Ketch cannot FLUSHALL
#: yet) servers does not see the first run's keys.
RUN_TOKEN = "%x" % (time.time_ns() // 1000 % 0xFFFFFF)

AT_PATTERN = re.compile(r"\{at_(s|ms):(-?\d+)\}")


def parse_address(text):
    """`HOST:PORT` as a `(host, port)` pair."""
    host, port = text.rsplit(":", 1)
    return host, int(port)


def expand(arg, prefix):
    """An argument with the case's key prefix and any `{at_s:N}`/`{at_ms:N}` filled in. The
    time is taken when the step runs, on each server, so both see the same offset."""
    arg = arg.replace(raw_cases.K, prefix)

    def at(match):
        unit, offset = match.group(1), int(match.group(2))
        now = time.time()
        return str(int(now) + offset if unit == "s" else int(now * 1000) + offset)

    return AT_PATTERN.sub(at, arg)


def cut(text):
    """`text`, shortened for the report."""
    if len(text) <= REPORT_REPLY_CHARS_MAX:
        return text
    return text[:REPORT_REPLY_CHARS_MAX] + "... (%d chars)" % len(text)


class Side:
    """One server's connections for one variant of one case."""

    def __init__(self, address, protocol):
        self.address = address
        self.protocol = protocol
        self.conns = {}
        self.notes = []

    def conn(self, which):
        """Connection `which` (1 or 2), opened on first use, after `HELLO 3` under RESP3."""
        if which not in self.conns:
            conn = RawConnection(self.address)
            if self.protocol == 3:
                raw, node = conn.call(["HELLO", "3"])
                if normalize.is_error(node):
                    self.notes.append("HELLO 3 refused: %r" % raw)
            self.conns[which] = conn
        return self.conns[which]

    def close(self):
        for conn in self.conns.values():
            conn.close()


def scan_all(conn, args):
    """Iterates a SCAN-family command to cursor 0; the canonical set of what it returned."""
    name = args[0].upper()
    key_args = args[1:2] if name != "SCAN" else []
    rest = args[2:] if name != "SCAN" else args[1:]
    cursor = b"0"
    elements = []
    for _ in range(SCAN_CALLS_MAX):
        raw, node = conn.call([name] + key_args + [cursor] + rest)
        kind, items = node
        if not isinstance(items, list) or len(items) != 2 or not isinstance(items[1][1], list):
            return "reply %r" % raw
        cursor = items[0][1]
        elements.extend(item[1] for item in items[1][1])
        if cursor == b"0":
            break
    else:
        return "cursor did not return to 0 within %d calls" % SCAN_CALLS_MAX
    if name in ("HSCAN", "ZSCAN"):
        pairs = sorted(zip(elements[0::2], elements[1::2]))
        return "pairs=%r" % pairs
    return "elements=%r" % sorted(set(elements))


def command_consistency(conn):
    """COMMAND COUNT, len(COMMAND) and the number of top-level names in COMMAND LIST agree.
    (Redis 7's COMMAND LIST also names every subcommand, as `config|get`: those are counted
    apart, and only whether there are any is compared.)"""
    counts = []
    subcommands = 0
    for args in (["COMMAND", "COUNT"], ["COMMAND"], ["COMMAND", "LIST"]):
        raw, node = conn.call(args)
        if normalize.is_error(node):
            return "%s: %r" % (" ".join(args), raw)
        if node[0] == ord(":"):
            counts.append(int(node[1]))
        elif args == ["COMMAND", "LIST"]:
            names = [item[1] for item in node[1] or []]
            subcommands = sum(1 for name in names if b"|" in name)
            counts.append(len(names) - subcommands)
        else:
            counts.append(len(node[1] or []))
    verdict = "consistent" if counts[0] == counts[1] == counts[2] else (
        "COMMAND COUNT=%d len(COMMAND)=%d COMMAND LIST commands=%d" % tuple(counts)
    )
    return "%s, COMMAND LIST names subcommands: %s" % (verdict, subcommands > 0)


def run_step(side, step, prefix):
    """Runs one step on one side; `(description, canonical reply)`."""
    which = 1
    if isinstance(step, raw_cases.On2):
        which, step = 2, step.step
    label = "" if which == 1 else "[conn 2] "
    if isinstance(step, raw_cases.Sleep):
        return "sleep %d ms" % step.ms, ""
    conn = side.conn(which)
    if isinstance(step, raw_cases.ScanAll):
        args = [expand(a, prefix) for a in step.args]
        return label + "full iteration of " + " ".join(args), scan_all(conn, args)
    if isinstance(step, raw_cases.CommandConsistency):
        described = "COMMAND COUNT == len(COMMAND) == commands in COMMAND LIST"
        return label + described, command_consistency(conn)
    norm = None
    if isinstance(step, raw_cases.N):
        norm, step = step.norm, step.args
    args = [expand(a, prefix) for a in step]
    raw, node = conn.call(args)
    described = label + " ".join(repr(a) if (" " in a or not a) else a for a in args)
    if norm:
        described += "   [normalizer %s]" % norm
    return described, normalize.canonical(norm, raw, node)


def run_compare(case, variant, redis_addr, ketch_addr, protocol):
    """One variant of one raw case on both servers; `(same, report_lines)`."""
    prefix = "compat:%s:%s:%s:" % (RUN_TOKEN, case.id, variant)
    redis_side, ketch_side = Side(redis_addr, protocol), Side(ketch_addr, protocol)
    lines, same = [], True
    try:
        for number, step in enumerate(case.steps, 1):
            if isinstance(step, raw_cases.Sleep):
                time.sleep(step.ms / 1000)
                lines.append("  %2d. sleep %d ms" % (number, step.ms))
                continue
            described, from_redis = run_step(redis_side, step, prefix)
            try:
                _, from_ketch = run_step(ketch_side, step, prefix)
            except (OSError, ConnectionError, ValueError) as error:
                from_ketch = "<%s: %s>" % (type(error).__name__, error)
                ketch_side.close()
                ketch_side.conns = {}
            differs = from_redis != from_ketch
            same = same and not differs
            lines.append("  %2d. %s" % (number, described))
            lines.append("      redis: %s" % cut(from_redis))
            lines.append("   %s ketch: %s" % ("!=" if differs else "  ", cut(from_ketch)))
    finally:
        redis_side.close()
        ketch_side.close()
    for note in ketch_side.notes:
        lines.insert(0, "  note (ketch): " + note)
    for note in redis_side.notes:
        lines.insert(0, "  note (redis): " + note)
    return same, lines


def run_unsupported(case, variant, ketch_addr, protocol):
    """A case of commands Ketch refuses: each reply must say "not supported by ketch"."""
    prefix = "compat:%s:%s:%s:" % (RUN_TOKEN, case.id, variant)
    side = Side(ketch_addr, protocol)
    lines, same = [], True
    try:
        for number, step in enumerate(case.steps, 1):
            args = [expand(a, prefix) for a in step]
            raw, node = side.conn(1).call(args)
            ok = normalize.is_error(node) and NOT_SUPPORTED_TEXT in (normalize.text_of(node) or "")
            same = same and ok
            lines.append("  %2d. %s" % (number, " ".join(args)))
            lines.append("      expected: an error containing %r" % NOT_SUPPORTED_TEXT)
            lines.append("   %s ketch: %s" % ("  " if ok else "!=", cut(repr(raw))))
    finally:
        side.close()
    return same, lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, type=parse_address)
    parser.add_argument("--ketch", required=True, type=parse_address)
    parser.add_argument("--ketch-follower", type=parse_address)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default="", help="run only result ids containing this")
    options = parser.parse_args()
    os.makedirs(options.out, exist_ok=True)

    results = []  # (id, same, lines)
    started = time.monotonic()
    for case in raw_cases.CASES:
        variants = [("resp2", 2, options.ketch), ("resp3", 3, options.ketch)]
        if case.follower and options.ketch_follower:
            variants.append(("follower", 2, options.ketch_follower))
        for variant, protocol, ketch_addr in variants:
            result_id = "%s@%s" % (case.id, variant)
            if options.only not in result_id:
                continue
            if case.unsupported:
                same, lines = run_unsupported(case, variant, ketch_addr, protocol)
            else:
                same, lines = run_compare(case, variant, options.redis, ketch_addr, protocol)
            results.append((result_id, same, lines))

    import py_workload  # after the raw layer: a missing redis-py must not hide its results

    for result_id, same, lines in py_workload.run_all(options.redis, options.ketch, RUN_TOKEN):
        if options.only in result_id:
            results.append((result_id, same, lines))

    with open(os.path.join(options.out, "results.txt"), "w") as out:
        for result_id, same, _ in results:
            out.write("%s\t%s\n" % (result_id, "same" if same else "differs"))
    with open(os.path.join(options.out, "report.txt"), "w") as out:
        for result_id, same, lines in results:
            out.write("#### %s (%s)\n" % (result_id, "same" if same else "differs"))
            out.write("\n".join(lines) + "\n")
    differing = sum(1 for _, same, _ in results if not same)
    print(
        "compat driver: %d results, %d differ, %.1f s"
        % (len(results), differing, time.monotonic() - started)
    )


if __name__ == "__main__":
    main()

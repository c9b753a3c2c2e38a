"""Redis time per Lua script, from the slowlog, for one quota_bench run.

    pip install redis
    python3 tests/load/scripts/script_cost.py --port 6390 -- \
        target/release/quota_bench --rate 2000 --clients 1

Every command of the run is logged (slowlog threshold 0); the EVALSHA
entries are grouped by script (its SHA and key count: the lease passes 2 +
one per candidate, the settle 3) and their mean and median microseconds
printed. The median holds when other work on the machine preempts Redis
now and then, which the mean of `INFO commandstats` does not. Use a Redis
of its own: the slowlog sees every client's commands.
"""

import argparse
import statistics
import subprocess

import redis

ENTRIES = 400_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("bench", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    bench = [part for part in args.bench if part != "--"]
    server = redis.Redis(port=args.port)
    threshold = server.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    length = server.config_get("slowlog-max-len")["slowlog-max-len"]
    server.config_set("slowlog-log-slower-than", 0)
    server.config_set("slowlog-max-len", ENTRIES)
    server.slowlog_reset()
    try:
        subprocess.run(
            [*bench, "--redis-url", f"redis://127.0.0.1:{args.port}"],
            check=True,
            capture_output=True,
        )
        entries = server.execute_command("SLOWLOG", "GET", ENTRIES)
    finally:
        server.config_set("slowlog-log-slower-than", threshold)
        server.config_set("slowlog-max-len", length)
    by_script: dict[str, list[int]] = {}
    for entry in entries:
        # id, time, duration (µs), arguments, client address, client name
        duration, arguments = entry[2], entry[3]
        command = [part.decode(errors="replace") for part in arguments]
        if command[0].upper() != "EVALSHA":
            continue
        script = f"{command[1][:8]} ({command[2]} keys)"
        by_script.setdefault(script, []).append(duration)
    for script, durations in sorted(by_script.items(), key=lambda item: -len(item[1])):
        print(
            f"{script}: calls={len(durations)} "
            f"mean={statistics.mean(durations):.1f} µs "
            f"median={statistics.median(durations):.0f} µs"
        )


if __name__ == "__main__":
    main()

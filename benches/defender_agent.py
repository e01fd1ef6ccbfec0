"""Time the AWS IoT Device Defender Python agent building and encoding one metrics report.

inferwatch's own report builder is compared against this reference. The collector of the
`AWSIoTDeviceDefenderAgentSDK` package (the agent AWS publishes on PyPI) reads the listening
ports, network counters and established TCP connections through psutil. Then
`to_json_string` encodes the report. Each round creates one report on a collector that
keeps its previous report, as the agent does when it runs, and times the two steps apart.

Usage: benches/defender_agent.sh [--rounds N] [--short-names] [--json]
"""

import argparse
import json
import platform
import statistics
import sys
import time

try:
    from AWSIoTDeviceDefenderAgentSDK import collector
except ImportError:
    sys.exit(
        "error: AWSIoTDeviceDefenderAgentSDK is not installed: run benches/defender_agent.sh, "
        "or .venv/bin/pip install AWSIoTDeviceDefenderAgentSDK==2.0.0"
    )


def percentile(sorted_values, percent):
    """Return the `percent` percentile of ascending values, interpolating between ranks."""
    rank = percent / 100 * (len(sorted_values) - 1)
    lower = int(rank)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (rank - lower)


def summarise(nanos):
    """Return the median, p90 and mean of nanosecond timings, in microseconds."""
    values = sorted(n / 1000 for n in nanos)
    return {
        "median_us": statistics.median(values),
        "p90_us": percentile(values, 90),
        "mean_us": statistics.fmean(values),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed reports (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed reports first")
    parser.add_argument("--short-names", action="store_true", help="use the short JSON keys")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected 1 or more")

    agent = collector.Collector(short_metrics_names=args.short_names, use_custom_metrics=True)
    for _ in range(args.warmup):
        agent.collect_metrics().to_json_string()

    collect_ns, encode_ns, total_ns = [], [], []
    report = ""
    for _ in range(args.rounds):
        start = time.perf_counter_ns()
        metrics = agent.collect_metrics()
        collected = time.perf_counter_ns()
        report = metrics.to_json_string()
        end = time.perf_counter_ns()
        collect_ns.append(collected - start)
        encode_ns.append(end - collected)
        total_ns.append(end - start)

    # What the last report held, so that runs on different machines can be matched.
    body = json.loads(report)
    sections = body.get("met") or body.get("metrics") or {}
    result = {
        "python": platform.python_version(),
        "rounds": args.rounds,
        "report_bytes": len(report),
        "report_sections": sorted(sections),
        "collect": summarise(collect_ns),
        "encode": summarise(encode_ns),
        "collect_and_encode": summarise(total_ns),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"AWSIoTDeviceDefenderAgentSDK collector, Python {result['python']}, "
          f"{args.rounds} reports of {len(report)} bytes")
    for step in ("collect", "encode", "collect_and_encode"):
        s = result[step]
        print(f"{step:<20} median {s['median_us']:9.1f} us  p90 {s['p90_us']:9.1f} us  "
              f"mean {s['mean_us']:9.1f} us")


if __name__ == "__main__":
    main()

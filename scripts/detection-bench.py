#!/usr/bin/env python3
"""Detection benchmark: time from starting a simulated miner to the first alarm of
`inferwatch run`, and the alarms of a benign run.

Each scenario runs `inferwatch run MODEL --profile crypto-mining --drift --json` and reads
its JSON lines. Miner scenarios start `inferwatch simulate miner` after a benign warm-up
and report the time from the miner's start to the first in-alarm event (by the event's
time_ms, the end of the datapoint that raised it). The benign scenario counts every
in-alarm event. The feedback scenario writes gpu_load_fb = 85 and gpu_inference_fb = 180
and reports on which datapoint the profile raises its alarm.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def load_average():
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


class Run:
    """A running `inferwatch run` whose JSON lines are collected on a thread."""

    def __init__(self, args, extra, seconds):
        command = [
            args.bin, "run", args.model, "--profile", "crypto-mining", "--drift", "--json",
            "--window", "300", "--eval-period", str(args.eval_period),
            "--drift-warmup", str(args.drift_warmup), "--duration", str(seconds),
        ] + extra
        self.command = command
        self.started_ms = time.time() * 1000
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events = []
        self.lines = 0
        self.first_line_ms = None
        self.lock = threading.Lock()
        # With --keep-json, every JSON line of the run is also written to a file, so that the
        # per-second latency can be replayed later, for example to calibrate the drift detector.
        self.copy = None
        if args.keep_json:
            os.makedirs(args.keep_json, exist_ok=True)
            name = os.path.join(args.keep_json, f"run-{int(self.started_ms)}.jsonl")
            self.copy = open(name, "w", encoding="utf-8")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            if self.copy is not None:
                self.copy.write(line)
                self.copy.flush()
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                if self.first_line_ms is None:
                    self.first_line_ms = time.time() * 1000
                self.lines += 1
                self.events.extend(record.get("alarms") or [])
                self.last = record

    def raised(self, since_ms=0.0):
        with self.lock:
            return [e for e in self.events if e["state"] == "in-alarm" and e["time_ms"] >= since_ms]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        self.reader.join(timeout=5)


def miner_scenario(args, name, miner_args):
    run = Run(args, [], args.warmup + args.timeout + 5)
    time.sleep(args.warmup)
    false_alarms = run.raised()
    start_ms = time.time() * 1000
    miner = subprocess.Popen(
        [args.bin, "simulate", "miner", "--duration", str(args.timeout + 5),
         "--name", "bench-miner"] + miner_args,
        stderr=subprocess.DEVNULL)
    first = None
    deadline = time.time() + args.timeout
    while time.time() < deadline and first is None:
        time.sleep(0.2)
        raised = run.raised(start_ms)
        if raised:
            first = min(raised, key=lambda e: e["time_ms"])
    miner.terminate()
    miner.wait()
    run.stop()
    result = {"scenario": name, "warmup_alarms": len(false_alarms),
              "warmup_alarm_details": [e["detail"] for e in false_alarms][:3],
              "load_average": load_average()}
    if first is None:
        result.update(time_to_alarm_s=None, first_alarm=f"none within {args.timeout} s")
    else:
        result.update(time_to_alarm_s=round((first["time_ms"] - start_ms) / 1000, 1),
                      first_alarm=f'{first["behavior"]}: {first["detail"]}')
    return result


def benign_scenario(args):
    run = Run(args, [], args.benign_secs)
    run.process.wait()
    run.reader.join(timeout=5)
    raised = run.raised()
    names = sorted({e["behavior"] for e in raised})
    return {"scenario": f"benign {args.benign_secs} s", "alarms": len(raised),
            "behaviors": names, "details": [e["detail"] for e in raised][:5],
            "load_average": load_average()}


def feedback_scenario(args):
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([args.bin, "simulate", "feedback", "--gpu-load", "85",
                        "--inference-time", "180", "--dir", folder],
                       check=True, stdout=subprocess.DEVNULL)
        seconds = 3 * args.eval_period + 2
        run = Run(args, ["--feedback-dir", folder], seconds)
        run.process.wait()
        run.reader.join(timeout=5)
        profile = [e for e in run.raised() if e["kind"] == "behavior"]
    if not profile:
        return {"scenario": "feedback 85/180", "first_alarm": "none"}
    first_ms = min(e["time_ms"] for e in profile)
    # The run prints its first line one second after the detector starts, and the
    # detector evaluates at the end of each period: this numbers the datapoint, within
    # the period's rounding to the clock's multiples.
    detector_start_ms = run.first_line_ms - 1000
    datapoint = max(1, math.ceil((first_ms - detector_start_ms) / (args.eval_period * 1000)))
    return {"scenario": "feedback 85/180",
            "behaviors": sorted({e["behavior"] for e in profile}),
            "seconds_after_detector_start": round((first_ms - detector_start_ms) / 1000, 1),
            "datapoint": datapoint,
            "load_average": load_average()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/debug/inferwatch")
    parser.add_argument("--model", default="models/ppocr-cls/model.onnx")
    parser.add_argument("--warmup", type=float, default=45, help="benign seconds before the miner")
    parser.add_argument("--drift-warmup", type=float, default=30)
    parser.add_argument("--eval-period", type=float, default=5)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for an alarm")
    parser.add_argument("--benign-secs", type=int, default=600)
    parser.add_argument("--scenarios", default="all-cores,nice19,benign,feedback")
    parser.add_argument("--keep-json", metavar="DIR",
                        help="also write each run's JSON lines to a file in DIR")
    args = parser.parse_args()
    print(f"# machine: {machine()}", flush=True)
    print(f"# load average at start: {load_average()}", flush=True)
    runs = {
        "all-cores": lambda: miner_scenario(args, "all cores", []),
        "nice19": lambda: miner_scenario(args, "1 thread, nice 19", ["--threads", "1", "--nice", "19"]),
        "benign": lambda: benign_scenario(args),
        "feedback": lambda: feedback_scenario(args),
    }
    for name in args.scenarios.split(","):
        if name not in runs:
            sys.exit(f"unknown scenario {name!r}: expected one of {', '.join(runs)}")
        print(json.dumps(runs[name]()), flush=True)


if __name__ == "__main__":
    main()

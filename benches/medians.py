"""Print the median of every criterion bench result under TARGET/criterion.

Usage: python3 benches/medians.py [TARGET_DIR]   (default: $CARGO_TARGET_DIR or target)
"""

import glob
import json
import os
import sys

target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target")
pattern = os.path.join(target, "criterion", "**", "new", "estimates.json")
for path in sorted(glob.glob(pattern, recursive=True)):
    with open(path) as file:
        median = json.load(file)["median"]
    with open(path.replace("estimates.json", "benchmark.json")) as file:
        name = json.load(file)["full_id"]
    interval = median["confidence_interval"]
    print(f"{name:<72} median {median['point_estimate']:14.2f} ns  "
          f"[{interval['lower_bound']:.2f}, {interval['upper_bound']:.2f}]")

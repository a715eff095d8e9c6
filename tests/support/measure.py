"""Run a command several times; print its wall time and peak RSS as JSON.

Usage: python measure.py RUNS COMMAND...

Peak RSS is the largest resident set of any run (RUSAGE_CHILDREN covers only the commands
this script starts, so the measuring process itself is not counted). The command's own
stdout is captured; if it prints JSON with an `in_process_s` key, the median is reported.
"""

import json
import resource
import statistics
import subprocess
import sys
import time

runs = int(sys.argv[1])
cmd = sys.argv[2:]
walls, inner = [], []
for _ in range(runs):
    start = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    walls.append(time.perf_counter() - start)
    try:
        data = json.loads(out.stdout)
        if isinstance(data, dict) and "in_process_s" in data:
            inner.append(float(data["in_process_s"]))
    except ValueError:
        pass
print(json.dumps({
    "runs": runs,
    "wall_median_s": statistics.median(walls),
    "wall_min_s": min(walls),
    "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    "in_process_median_s": statistics.median(inner) if inner else None,
}))

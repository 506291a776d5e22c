"""Print where each enabled workflow's results and the report are (end of `make demo`)."""

import sys
from pathlib import Path

import yaml

config = yaml.safe_load(Path("config/config.yaml").read_text())
print("\n== results")
for name in ["af3", "rnaseq", "trendy", "llc", "dali"]:
    if not config.get(name, {}).get("enabled"):
        continue
    results = Path("results") / name
    summary = results / "SUMMARY.txt"
    print(f"{name:7s} {results}/")
    if summary.exists():
        for line in summary.read_text().splitlines():
            print(f"        {line}")
    if name == "trendy" and (results / "ilamb/build/index.html").exists():
        print(f"        ILAMB scores (open in a browser): {results}/ilamb/build/index.html")
report = Path("results/report.html")
print(f"report  {report} (open in a browser)" if report.exists() else "report  missing", file=sys.stdout)
print("logs    logs/<workflow>/   benchmarks: benchmarks/<workflow>/")
# Long jobs log "k of N done, rate, ETA" at most once a minute (scripts/batches.py Progress): watch
# them with `tail -f` while a big run is going (on SLURM the same lines are in logs/slurm/ too).
print(
    "progress (tail -f while a run goes): logs/af3/organize/chunk-*.log, logs/dali/batch-*.log, "
    "logs/rnaseq/download/<run>.log, logs/af3/rclone/rclone-copy.log"
)

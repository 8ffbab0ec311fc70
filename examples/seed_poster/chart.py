#!/usr/bin/env python3
"""Quality vs decode speed of the seed-poster models, from run.py's results.md: held-out
perplexity against the time-per-step speedup over MHA at batch 512 (MHA at 1.0), one colour per
family of variants.

usage: chart.py RESULTS_MD OUT_SVG
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import svg_charts  # noqa: E402

results, out = sys.argv[1:3]
rows = [line.strip().strip("|").split("|") for line in open(results) if line.startswith("| ") and not line.startswith("| model")]
header = [h.strip() for h in next(line for line in open(results) if line.startswith("| model")).strip().strip("|").split("|")]
col = {name: i for i, name in enumerate(header)}
points = []
for r in rows:
    cells = [c.strip() for c in r]
    name = cells[col["model"]]
    speed = cells[col["speedup b512"]]
    x = 1.0 if name == "MHA" else float(speed.rstrip("x"))
    family = name.split()[0]
    label = name.split()[1] if " " in name else "MHA"
    points.append((label, x, float(cells[col["perplexity"]]), family))
svg_charts.scatter(points, out, "Seed poster (scaled down): quality vs decode speed at batch 512, CPU",
                   "time per decode step of MHA / of the model, batch 512 (> 1: faster)", "held-out perplexity")
print(f"wrote {out} ({len(points)} models)")

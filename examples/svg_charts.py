"""Plain SVG charts for the example studies (no plotting package in the project venv): a histogram
(examples/wgqa_t5) and a labelled scatter (examples/seed_poster). Files are written atomically."""
import os

W, H, PAD = 560, 320, 48


def _write(path, title, body):
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>', *body, "</svg>"]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(path + ".tmp", path)


def _axis(lo, hi, n=5):
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def _frame(x0, x1, y0, y1, xlabel, ylabel, xfmt, yfmt):
    """Axes over [x0, x1] x [y0, y1] with 6 ticks each; returns (body, px, py)."""
    px = lambda x: PAD + (x - x0) / ((x1 - x0) or 1) * (W - 2 * PAD)  # noqa: E731
    py = lambda y: H - PAD - (y - y0) / ((y1 - y0) or 1) * (H - 2 * PAD)  # noqa: E731
    body = [f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>']
    for x in _axis(x0, x1):
        body.append(f'<text x="{px(x):.1f}" y="{H - PAD + 14}" text-anchor="middle">{x:{xfmt}}</text>')
    for y in _axis(y0, y1):
        body.append(f'<text x="{PAD - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{y:{yfmt}}</text>')
    body.append(f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">{xlabel}</text>')
    body.append(f'<text x="12" y="{H / 2}" text-anchor="middle" transform="rotate(-90 12 {H / 2})">{ylabel}</text>')
    return body, px, py


def histogram(values, path, title, marker, marker_label, lo=-0.2, hi=1.2, bins=28, ticks=(0.0, 0.25, 0.5, 0.75, 1.0),
              xlabel="value"):
    """Counts of `values` in `bins` bins over [lo, hi], with a dashed line at `marker`."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins)))] += 1
    top = max(counts) or 1
    bw = (W - 2 * PAD) / bins
    px = lambda x: PAD + (x - lo) / (hi - lo) * (W - 2 * PAD)  # noqa: E731
    body = []
    for i, c in enumerate(counts):
        h = (H - 2 * PAD) * c / top
        body.append(f'<rect x="{PAD + i * bw:.1f}" y="{H - PAD - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="#4c72b0"/>')
    for x in ticks:
        body.append(f'<line x1="{px(x):.1f}" y1="{H - PAD}" x2="{px(x):.1f}" y2="{H - PAD + 4}" stroke="black"/>')
        body.append(f'<text x="{px(x):.1f}" y="{H - PAD + 16}" text-anchor="middle">{x:g}</text>')
    body.append(f'<line x1="{px(marker):.1f}" y1="{PAD}" x2="{px(marker):.1f}" y2="{H - PAD}" stroke="#c44e52" stroke-dasharray="4 3"/>')
    body.append(f'<text x="{px(marker) + 4:.1f}" y="{PAD + 10}" fill="#c44e52">{marker_label}</text>')
    body.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>')
    body.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{xlabel} ({len(values)} values)</text>')
    _write(path, title, body)


def scatter(points, path, title, xlabel, ylabel, colors=None):
    """points: (label, x, y, group) tuples; one colour per group (`colors`: group -> colour), each
    point labelled. Axes span the data with 5% margins."""
    xs = [p[1] for p in points]
    ys = [p[2] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    mx, my = (x1 - x0) * 0.08 or 0.1, (y1 - y0) * 0.08 or 1.0
    x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my, y1 + my
    body, px, py = _frame(x0, x1, y0, y1, xlabel, ylabel, ".2f", ".0f")
    palette = ["#c44e52", "#4c72b0", "#55a868", "#8172b2", "#ccb974", "#64b5cd"]
    groups = list(dict.fromkeys(p[3] for p in points))
    colors = colors or {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    for label, x, y, group in points:
        body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colors[group]}"/>')
        body.append(f'<text x="{px(x) + 6:.1f}" y="{py(y) - 5:.1f}" fill="{colors[group]}">{label}</text>')
    for i, g in enumerate(groups):
        body.append(f'<circle cx="{W - PAD - 80}" cy="{PAD + 4 + 14 * i}" r="4" fill="{colors[g]}"/>')
        body.append(f'<text x="{W - PAD - 72}" y="{PAD + 8 + 14 * i}">{g}</text>')
    _write(path, title, body)


def lines(series, path, title, xlabel, ylabel, xfmt=".0f"):
    """series: (label, [(x, y), ...]) pairs, one coloured polyline each, with a legend; x ticks in
    format `xfmt`."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x0, x1 = min(0, min(xs)), max(xs)
    y0, y1 = min(ys), max(ys)
    my = (y1 - y0) * 0.05 or 1.0
    y0, y1 = y0 - my, y1 + my
    body, px, py = _frame(x0, x1, y0, y1, xlabel, ylabel, xfmt, ".2f")
    palette = ["#4c72b0", "#c44e52", "#55a868", "#8172b2"]
    for i, (label, pts) in enumerate(series):
        color = palette[i % len(palette)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.append(f'<line x1="{W - PAD - 250}" y1="{PAD + 4 + 16 * i}" x2="{W - PAD - 230}" y2="{PAD + 4 + 16 * i}" '
                    f'stroke="{color}" stroke-width="2"/>')
        body.append(f'<text x="{W - PAD - 224}" y="{PAD + 8 + 16 * i}">{label}</text>')
    _write(path, title, body)

"""Inline SVG for the report: size against latency, one point per target, log scales where the
values span more than a decade (microsecond and millisecond latencies on one chart). It scales
with its container (viewBox, width 100%), so it fits a phone as well as a desktop page."""

from __future__ import annotations

import html
import math

W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 74, 600, 16, 300
COLOURS = {"built": "#2f7d4a", "cached": "#2f7d4a", "deferred": "#b86e12", "failed": "#b0413e"}


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms * 1000:.3g} µs"
    if ms < 1000:
        return f"{ms:.3g} ms"
    return f"{ms / 1000:.3g} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


class Axis:
    def __init__(self, values: list[float], lo_px: float, hi_px: float, unit: float = 1.0):
        lo, hi = min(values), max(values)
        self.unit = unit  # linear ticks are round numbers in this unit (KiB, MiB, ms)
        self.log = lo > 0 and hi / lo > 10
        if self.log:
            self.lo, self.hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
            if self.hi == self.lo:
                self.hi *= 10
        else:
            span = (hi - lo) or abs(hi) or 1.0
            self.lo, self.hi = max(0.0, lo - 0.1 * span), hi + 0.1 * span
        self.lo_px, self.hi_px = lo_px, hi_px

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return self.lo_px + f * (self.hi_px - self.lo_px)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.lo)), round(math.log10(self.hi))
            decades = [10.0**k for k in range(first, last + 1)]
            if len(decades) <= 2:  # one decade: 1-2-5 steps so the axis still reads
                return [d * m for d in decades for m in (1, 2, 5) if self.lo <= d * m <= self.hi]
            return decades
        lo, hi = self.lo / self.unit, self.hi / self.unit
        step = _nice((hi - lo) / 4)
        start = math.ceil(lo / step) * step
        return [(start + i * step) * self.unit for i in range(6) if start + i * step <= hi + 1e-9]


def _nice(x: float) -> float:
    exp = math.floor(math.log10(x)) if x > 0 else 0
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= x:
            return m * 10**exp
    return 10 ** (exp + 1)


def size_latency_chart(points: list[dict], chart_id: str, title: str) -> str:
    """points: {label, latency_ms, size_bytes, note, status, unstable, reference}."""
    usable = [p for p in points if p.get("latency_ms") and p.get("size_bytes")]
    if len(usable) < 2:  # one point compares nothing
        return ""
    top_ms, top_bytes = max(p["latency_ms"] for p in usable), max(p["size_bytes"] for p in usable)
    x = Axis([p["latency_ms"] for p in usable], LEFT, RIGHT, 0.001 if top_ms < 1 else 1.0)
    y = Axis(
        [p["size_bytes"] for p in usable],
        BOTTOM,
        TOP,
        next((s for s in (1 << 30, 1 << 20, 1 << 10) if top_bytes >= s), 1),
    )
    esc = html.escape
    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
        f'role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" class="plot"/>',
    ]
    for t in x.ticks():
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{BOTTOM}" class="grid"/>'
            f'<text x="{px:.1f}" y="{BOTTOM + 16}" class="tick" text-anchor="middle">{esc(fmt_ms(t))}</text>'
        )
    for t in y.ticks():
        py = y(t)
        parts.append(
            f'<line x1="{LEFT}" y1="{py:.1f}" x2="{RIGHT}" y2="{py:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{esc(fmt_bytes(t))}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + RIGHT) / 2}" y="{H - 22}" class="axis" text-anchor="middle">latency p50 on the '
        f"build host{' (log scale)' if x.log else ''} →</text>"
        f'<text x="14" y="{(TOP + BOTTOM) / 2}" class="axis axis-y" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + BOTTOM) / 2})">size{" (log)" if y.log else ""} →</text>'
    )
    # labels avoid the points too, not only each other
    placed = [
        (x(p["latency_ms"]) - 6, y(p["size_bytes"]) - 6, x(p["latency_ms"]) + 6, y(p["size_bytes"]) + 6)
        for p in usable
    ]
    numbers = {id(p): i + 1 for i, p in enumerate(usable)}  # the HTML key below lists them in this order
    for p in sorted(usable, key=lambda p: y(p["size_bytes"])):
        px, py = x(p["latency_ms"]), y(p["size_bytes"])
        colour = COLOURS.get(p.get("status"), "#555")
        fill = "none" if p.get("unstable") else colour
        shape = (
            f'<rect x="{px - 5:.1f}" y="{py - 5:.1f}" width="10" height="10" fill="{fill}" stroke="{colour}" '
            f'stroke-width="2"/>'
            if p.get("reference")
            else f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{fill}" stroke="{colour}" stroke-width="2"/>'
        )
        tip = (
            f"{p['label']}: {fmt_bytes(p['size_bytes'])}, p50 {fmt_ms(p['latency_ms'])}"
            f"{', UNSTABLE' if p.get('unstable') else ''}{'; ' + p['note'] if p.get('note') else ''}"
        )
        text = (
            p["label"]
            + (f" · {p['note']}" if p.get("note") else "")
            + (" (unstable)" if p.get("unstable") else "")
        )
        width = 6.2 * len(text)
        anchor_end = px + 9 + width > W - 4
        tx = px - 9 if anchor_end else px + 9
        ty = py + 4
        box = lambda yy: (tx - width if anchor_end else tx, yy - 11, tx if anchor_end else tx + width, yy + 2)  # noqa: E731
        for _ in range(12):  # move a label down until it no longer overlaps one already placed
            b = box(ty)
            if not any(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3] for o in placed):
                break
            ty += 13
        placed.append(box(ty))
        leader = (
            f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{tx:.1f}" y2="{ty - 4:.1f}" class="leader"/>'
            if abs(ty - py - 4) > 1
            else ""
        )
        anchor = ' text-anchor="end"' if anchor_end else ""
        nx = px - 10 if px > LEFT + 30 else px + 10
        parts.append(
            f'<g class="point"><title>{esc(tip)}</title>{shape}{leader}'
            f'<text x="{tx:.1f}" y="{ty:.1f}" class="plabel"{anchor}>{esc(text)}</text>'
            f'<text x="{nx:.1f}" y="{py - 8:.1f}" class="pnum" text-anchor="middle">{numbers[id(p)]}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""A funnel as server-side SVG: stages as boxes, transitions as arrows, with counts.

Stages are laid out left to right in columns by their distance (BFS depth) from the
first stage, in definition order within a column. Each transition is a row inside
its stage's box ("on quiz_taken  12 · 40%"), so labels never collide with lines; an
arrow leaves the row for the target stage. Arrows to the next column are curves;
every other arrow (backwards, within a column, skipping columns) is routed through
the gaps between columns and a lane under all the boxes, so no line crosses a box.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from markupsafe import Markup, escape

from app.engine.model import Condition, FunnelDef, Transition

BOX_W, HEAD_H, ROW_H = 188, 50, 22
GAP_X, GAP_Y, LANE = 48, 28, 13
LEFT, TOP = 30, 12
MIN_SHOWN = 900  # px: narrower than this, the labels would be too small to read
SYMBOLS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


@dataclass(frozen=True)
class Flow:
    """What has happened in a funnel, by stage key (from StageMove and Enrollment rows)."""

    live: Mapping[str, int] = field(default_factory=dict)  # active contacts in each stage
    entered: Mapping[str, int] = field(default_factory=dict)  # entries into each stage
    moved: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (from, to, reason)
    exits: Mapping[str, int] = field(default_factory=dict)  # exit label -> count


@dataclass(frozen=True)
class Port:
    """One row of a stage box: the transitions of one kind to one target stage."""

    source: str
    target: str
    kind: str  # "event" | "timeout" (the StageMove reason)
    label: str
    detail: str
    moved: int
    rate: float | None  # moved / entries into the source stage


@dataclass
class Box:
    key: str
    depth: int
    x: float = 0
    y: float = 0
    ports: list[Port] = field(default_factory=list)

    @property
    def height(self) -> float:
        return HEAD_H + ROW_H * max(1, len(self.ports)) + 6


def describe_conditions(conditions: tuple[Condition, ...]) -> str:
    """`video = explainer-1, percent ≥ 50`: a `where` in a marketer's words."""
    parts = []
    for c in conditions:
        symbol = SYMBOLS.get(c.op, c.op)
        value = ", ".join(map(str, c.value)) if isinstance(c.value, list | tuple) else c.value
        parts.append(f"{c.path} {symbol} {value}")
    return ", ".join(parts)


def short_duration(value: timedelta) -> str:
    """`14d`, `36h`, `90m`: the largest whole unit, as marketers write durations."""
    minutes = int(value.total_seconds() // 60)
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def describe(transition: Transition) -> str:
    """The full trigger of a transition, for tooltips and tables."""
    if transition.on is None:
        return f"after {short_duration(transition.after)}" if transition.after else "at once"
    where = describe_conditions(transition.on.where)
    return f"on {transition.on.on}" + (f" where {where}" if where else "")


def depths(funnel: FunnelDef) -> dict[str, int]:
    """Each stage's BFS distance from the first; unreachable stages go after the rest."""
    found = {funnel.first_stage.key: 0}
    queue = deque([funnel.first_stage])
    while queue:
        stage = queue.popleft()
        for t in stage.transitions:
            target = funnel.stage(t.to)
            if target is not None and target.key not in found:
                found[target.key] = found[stage.key] + 1
                queue.append(target)
    last = max(found.values()) + 1
    return {s.key: found.get(s.key, last) for s in funnel.stages}


def ports(funnel: FunnelDef, flow: Flow) -> dict[str, list[Port]]:
    """The rows of every stage box, one per (target, kind), with moves and rates."""
    result: dict[str, list[Port]] = {}
    for stage in funnel.stages:
        grouped: dict[tuple[str, str], list[Transition]] = {}
        for t in stage.transitions:
            grouped.setdefault((t.to, "event" if t.on else "timeout"), []).append(t)
        rows = []
        for (target, kind), transitions in grouped.items():
            # Rows say just the event ("quiz_taken") or the wait ("after 14d"); the
            # arrow's style and the tooltip carry the rest.
            short = " or ".join(t.on.on if t.on else describe(t) for t in transitions)
            moved = flow.moved.get((stage.key, target, kind), 0)
            entered = flow.entered.get(stage.key, 0)
            rows.append(
                Port(
                    source=stage.key,
                    target=target,
                    kind=kind,
                    label=short,
                    detail=" or ".join(describe(t) for t in transitions) + f" → {target}",
                    moved=moved,
                    rate=moved / entered if entered else None,
                )
            )
        result[stage.key] = rows
    return result


def place(funnel: FunnelDef, flow: Flow) -> dict[str, Box]:
    """Boxes with their positions: one column per depth, definition order within it."""
    depth_of, rows = depths(funnel), ports(funnel, flow)
    boxes = {s.key: Box(s.key, depth_of[s.key], ports=rows[s.key]) for s in funnel.stages}
    column_y: dict[int, float] = {}
    for box in boxes.values():
        box.x = LEFT + box.depth * (BOX_W + GAP_X)
        box.y = column_y.get(box.depth, TOP)
        column_y[box.depth] = box.y + box.height + GAP_Y
    return boxes


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(port: Port) -> str:
    return f"{port.moved}" + (f" · {port.rate:.0%}" if port.rate is not None else "")


def _box_svg(box: Box, flow: Flow, first: bool) -> str:
    live, entered = flow.live.get(box.key, 0), flow.entered.get(box.key, 0)
    x, y = box.x, box.y
    summary = f"{box.key}: {live} now, {entered} entered"
    out = [
        f'<g class="stage{" first" if first else ""}"><title>{escape(summary)}</title>',
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{box.height}" rx="8"/>',
        f'<text class="key" x="{x + 10}" y="{y + 20}">{escape(_clip(box.key, 18))}</text>',
        f'<text class="live" x="{x + BOX_W - 10}" y="{y + 22}" text-anchor="end">{live}</text>',
        f'<text class="sub" x="{x + 10}" y="{y + 39}">{entered} entered</text>',
        f'<text class="sub" x="{x + BOX_W - 10}" y="{y + 39}" text-anchor="end">now</text>',
        f'<line x1="{x}" y1="{y + HEAD_H - 4}" x2="{x + BOX_W}" y2="{y + HEAD_H - 4}"/>',
    ]
    for i, port in enumerate(box.ports):
        row_y = y + HEAD_H + i * ROW_H + 15
        out.append(
            f'<g class="port {port.kind}">'
            f"<title>{escape(port.detail)}: {escape(_count(port))}</title>"
            f'<text x="{x + 10}" y="{row_y}">{escape(_clip(port.label, 17))}</text>'
            f'<text class="count" x="{x + BOX_W - 10}" y="{row_y}" text-anchor="end">'
            f"{escape(_count(port))}</text></g>"
        )
    if not box.ports:
        out.append(f'<text class="sub" x="{x + 10}" y="{y + HEAD_H + 15}">exit goals only</text>')
    out.append("</g>")
    return "".join(out)


class _Router:
    """Paths for every arrow, computed together so that routed arrows nest.

    Routed arrows get lanes under the boxes, the shortest nearest, and their
    vertical parts are ordered the same way in each gap, so they never cross one
    another's horizontal runs. An arrow into the lowest box of a column comes up into
    its bottom edge; any other comes in from the left, through the gap before it.
    """

    def __init__(self, boxes: dict[str, Box]) -> None:
        self.boxes = boxes
        self.bottom = max(b.y + b.height for b in boxes.values())
        self.gutter_use: dict[float, int] = {}
        lowest: dict[int, Box] = {}
        for box in boxes.values():
            if box.depth not in lowest or box.y > lowest[box.depth].y:
                lowest[box.depth] = box
        self.lowest = {b.key for b in lowest.values()}
        ports = [
            (p, row) for b in boxes.values() for row, p in enumerate(b.ports) if p.target in boxes
        ]
        routed = [(p, row) for p, row in ports if not self.adjacent(p)]
        routed.sort(key=lambda pr: (abs(self._span(pr[0])), self.boxes[pr[0].source].y))
        self.lanes = len(routed)
        self.lane = {(p.source, row): i for i, (p, row) in enumerate(routed)}
        self.left_in: dict[str, list[Port]] = {k: [] for k in boxes}
        self.bottom_in: dict[str, list[Port]] = {k: [] for k in boxes}
        for p, _row in ports:
            from_below = not self.adjacent(p) and p.target in self.lowest
            (self.bottom_in if from_below else self.left_in)[p.target].append(p)
        for key in boxes:
            # Curves first, in the order of their sources; then arrows from the lanes.
            self.left_in[key].sort(key=lambda p: (not self.adjacent(p), self.boxes[p.source].y))
            # From below, the farthest source arrives leftmost, so no riser crosses a run.
            self.bottom_in[key].sort(key=lambda p: -self._span(p))
        self.paths = {
            (p.source, row): self._path(p, row)
            for p, row in sorted(ports, key=lambda pr: self.lane.get((pr[0].source, pr[1]), -1))
        }

    def adjacent(self, port: Port) -> bool:
        return self.boxes[port.target].depth == self.boxes[port.source].depth + 1

    def _span(self, port: Port) -> float:
        return self.boxes[port.source].x - self.boxes[port.target].x

    def _gutter(self, x: float) -> float:
        used = self.gutter_use.get(x, 0)
        self.gutter_use[x] = used + 1
        return 8 + 6 * (used % 6)

    def _path(self, port: Port, row: int) -> str:
        source, target = self.boxes[port.source], self.boxes[port.target]
        sx, sy = source.x + BOX_W, source.y + HEAD_H + row * ROW_H + ROW_H / 2 - 4
        if port in self.bottom_in[port.target]:
            arrivals = self.bottom_in[port.target]
            tx = target.x + (arrivals.index(port) + 1) * BOX_W / (len(arrivals) + 1)
            lane_y = self.bottom + 12 + self.lane[(port.source, row)] * LANE
            out_x = sx + self._gutter(sx)
            end = target.y + target.height + 1
            return f"M{sx:g},{sy:g} H{out_x:g} V{lane_y:g} H{tx:.1f} V{end:g}"
        arrivals = self.left_in[port.target]
        ty = target.y + (arrivals.index(port) + 1) * target.height / (len(arrivals) + 1)
        tx = target.x - 1
        if self.adjacent(port):
            bend = GAP_X / 2
            return f"M{sx:g},{sy:g} C{sx + bend:g},{sy:g} {tx - bend:g},{ty:.1f} {tx:g},{ty:.1f}"
        lane_y = self.bottom + 12 + self.lane[(port.source, row)] * LANE
        out_x = sx + self._gutter(sx)
        in_x = target.x - self._gutter(target.x - GAP_X)
        return f"M{sx:g},{sy:g} H{out_x:g} V{lane_y:g} H{in_x:g} V{ty:.1f} H{tx:g}"

    def path(self, port: Port, row: int) -> str:
        return self.paths[(port.source, row)]


def render(funnel: FunnelDef, flow: Flow, *, title: str | None = None) -> Markup:
    """The diagram as inline SVG markup (styled by nurture.css, `.diagram`)."""
    boxes = place(funnel, flow)
    router = _Router(boxes)
    edges = []
    for box in boxes.values():
        for row, port in enumerate(box.ports):
            if port.target in boxes:
                edges.append(
                    f'<path class="edge {port.kind}" d="{router.path(port, row)}" '
                    'marker-end="url(#dg-arrow)"><title>'
                    f"{escape(port.detail)}: {escape(_count(port))}</title></path>"
                )
    width = LEFT + (max(b.depth for b in boxes.values()) + 1) * (BOX_W + GAP_X) - GAP_X + 12
    height = router.bottom + 12 + router.lanes * LANE + 8
    heading = title or f"Stages and transitions of {funnel.name}"
    description = (
        f"{len(funnel.stages)} stages. Each box shows the contacts in the stage now and how "
        "many entered it; each row a transition with how many moved along it and the share "
        "of entries."
    )
    first = funnel.first_stage.key
    body = "".join(_box_svg(b, flow, b.key == first) for b in boxes.values())
    return Markup(
        f'<svg class="diagram-svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        # It may shrink to fit, but not below this: past it the box scrolls sideways.
        f'style="min-width: {min(width, MIN_SHOWN):.0f}px" '
        f'role="img" aria-labelledby="dg-title dg-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="dg-title">{escape(heading)}</title><desc id="dg-desc">{description}</desc>'
        '<defs><marker id="dg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        f'</defs><g class="edges">{"".join(edges)}</g>{body}</svg>'
    )

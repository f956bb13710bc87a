"""A workflow's step graph drawn as SVG, from ``DescribeWorkflows``.

The steps stand in a column in their declared order (the order the table
in DESIGN.md reads), which is also the usual path through them: an OK that
goes to the next step is a short arrow down. Every other edge is routed in
a lane of its own beside the column — OK jumps on the left, error loops on
the right — so no two edges share a line and a revise or fix loop reads as
the loop it is. Drawn on the server: no script library, and the picture is
there before any script runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from specloom.v1 import common_pb2 as pb

DONE = "done"
BOX_W = 230.0
BOX_H = 40.0
GAP = 36.0
LANE = 18.0
TOP = 16.0


@dataclass(frozen=True)
class Edge:
    """One transition of the graph."""

    source: str
    target: str
    kind: str
    """ok, error or warning."""
    label: str


def edges_of(workflow: pb.WorkflowDescription) -> list[Edge]:
    """Every transition, ``done`` as a node of its own; a retry of the same step is a self-loop."""
    edges: list[Edge] = []
    for step in workflow.steps:
        t = step.transition
        edges.append(Edge(step.name, t.on_ok or DONE, "ok", "ok"))
        if t.on_error:
            cap = f" (≤ {step.max_rounds})" if step.max_rounds else ""
            edges.append(Edge(step.name, t.on_error, "error", f"error{cap}"))
        if t.on_warning and t.on_warning != step.name:
            edges.append(Edge(step.name, t.on_warning, "warning", "warning"))
    return edges


def _text(x: float, y: float, text: str, css: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def render(workflow: pb.WorkflowDescription) -> Markup:
    """The SVG of ``workflow``'s step graph."""
    names = [step.name for step in workflow.steps] + [DONE]
    row = {name: i for i, name in enumerate(names)}
    edges = edges_of(workflow)
    right = [e for e in edges if e.kind != "ok" and e.target != e.source and e.target in row]
    left = [
        e
        for e in edges
        if e.kind == "ok" and e.target in row and row[e.target] != row[e.source] + 1
    ]
    left_w = LANE * (len(left) + 1)
    right_w = LANE * (len(right) + 1) + 80
    x0 = left_w + 10
    width = x0 + BOX_W + right_w
    height = TOP + len(names) * (BOX_H + GAP)
    kinds = {step.name: step.kind for step in workflow.steps}

    def mid_y(name: str) -> float:
        return TOP + row[name] * (BOX_H + GAP) + BOX_H / 2

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-diagram" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(workflow.type)} step graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for name in names:
        y = TOP + row[name] * (BOX_H + GAP)
        css = "node done" if name == DONE else "node"
        if name == workflow.first_step:
            css += " first"
        parts.append(
            f'<rect x="{x0:.0f}" y="{y:.0f}" width="{BOX_W:.0f}" height="{BOX_H:.0f}" '
            f'rx="6" class="{css}"/>'
        )
        parts.append(_text(x0 + BOX_W / 2, y + 18, name, "node-name"))
        if name != DONE:
            parts.append(_text(x0 + BOX_W / 2, y + 33, kinds.get(name, ""), "node-kind"))
    for edge in edges:
        if edge.target not in row:
            continue
        if edge.kind == "ok" and row[edge.target] == row[edge.source] + 1:
            y1 = TOP + row[edge.source] * (BOX_H + GAP) + BOX_H
            parts.append(
                f'<line x1="{x0 + BOX_W / 2}" y1="{y1}" x2="{x0 + BOX_W / 2}" '
                f'y2="{y1 + GAP - 2}" class="edge ok" marker-end="url(#arrow)"/>'
            )
        elif edge.target == edge.source:
            y = mid_y(edge.source)
            xr = x0 + BOX_W
            parts.append(
                f'<path d="M{xr},{y - 8} C{xr + 34},{y - 26} {xr + 34},{y + 26} {xr + 2},{y + 8}" '
                f'class="edge {edge.kind}" fill="none" marker-end="url(#arrow)"/>'
            )
            parts.append(_text(xr + 38, y + 4, f"{edge.label}: retry", "edge-label", "start"))
    for lane, edge in enumerate(right, start=1):
        y1, y2 = mid_y(edge.source), mid_y(edge.target)
        xr = x0 + BOX_W
        xl = xr + lane * LANE + 10
        parts.append(
            f'<path d="M{xr},{y1} H{xl} V{y2} H{xr + 2}" class="edge {edge.kind}" '
            f'fill="none" marker-end="url(#arrow)"/>'
        )
        parts.append(_text(xl + 4, (y1 + y2) / 2 + 4, edge.label, "edge-label", "start"))
    for lane, edge in enumerate(left, start=1):
        y1, y2 = mid_y(edge.source), mid_y(edge.target)
        xl = x0 - lane * LANE
        parts.append(
            f'<path d="M{x0},{y1} H{xl} V{y2} H{x0 - 2}" class="edge ok skip" '
            f'fill="none" marker-end="url(#arrow)"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()

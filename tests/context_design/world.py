"""A scripted executor for the design family: what each kind of command "did".

By default every command succeeds: git reports a commit, agents report a
conversation id (and a good review when the command collects one), and a
ValidateDesign collects a valid document of the session's kind. Tests
override single (session key, step) pairs with :func:`Script` tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from specloom.orchestration.simulate import Call, Script, report
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.workflow import (
    ChildView,
    CollectedFile,
    ComponentView,
    Outcome,
    ReportedResult,
    StepContext,
)
from tests.documents.samples import VALID_COMPONENT, VALID_CONTEXT, VALID_SCHEMA

GOOD_REVIEW = (
    "# Review: Inventory\n\n## Summary\nThe designs are consistent.\n\n## Findings\n"
    "- `Inventory.Warehouses` depends on `Inventory.Stock`, which is designed and offers "
    "`adjust/2` with the signature used.\n- Entity ownership does not overlap.\n\n"
    "## Recommendations\nNone beyond keeping the stock API stable.\n"
)

Answer = pb.Result | Callable[[Call], pb.Result]


def content_for(path: str, content: Mapping[str, str | None]) -> str | None:
    """The content given for ``path``'s suffix (the first that fits), else missing."""
    return next((text for suffix, text in content.items() if path.endswith(suffix)), None)


def files_for(call: Call, content: Mapping[str, str | None]) -> dict[str, str | None]:
    """Every collected path of ``call``: the content given for its suffix, else missing."""
    return {path: content_for(path, content) for path in call.command.collect_files}


WRITTEN = {
    "/inventory.md": VALID_CONTEXT,
    "/inventory/stock.md": VALID_SCHEMA,  # Inventory.Stock is a schema in VALID_CONTEXT
    ".md": VALID_COMPONENT,
}
"""What an agent's design documents hold after it ran (a review may have edited them)."""


def agent_ok(call: Call) -> pb.Result:
    """An agent that did its work: a good review, valid designs where it collects them."""
    files = {
        path: GOOD_REVIEW if path.startswith("docs/review/") else content_for(path, WRITTEN)
        for path in call.command.collect_files
    }
    return report(
        "ok",
        data={"conversation_id": f"conv-{call.key or 'root'}-{call.step}-{call.attempt}"},
        files=files,
    )


def collected(content: str | bytes | None) -> Callable[[Call], pb.Result]:
    """A ValidateDesign that collects ``content`` (None: the file does not exist)."""

    def answer(call: Call) -> pb.Result:
        return report("ok", files={call.command.collect_files[0]: content})

    return answer


def initialized(
    context_design: str | None = VALID_CONTEXT, rules: Mapping[str, str] | None = None
) -> Callable[[Call], pb.Result]:
    """An Initialize whose checkout holds ``context_design`` and ``rules`` (path -> text)."""

    def answer(call: Call) -> pb.Result:
        files: dict[str, str | bytes | None] = {}
        for path in call.command.collect_files:
            if path.endswith("*.md"):
                folder = path.removesuffix("*.md")
                matched = [(p, t) for p, t in (rules or {}).items() if p.startswith(folder)]
                if not matched:
                    files[path] = None
                files.update(matched)
            else:
                files[path] = context_design
        return report("ok", files=files, data={"branch": "b"})

    return answer


def valid_design(call: Call) -> str:
    """A valid design document of the kind and type the session designs."""
    if call.session.type == "ContextDesign":
        return VALID_CONTEXT
    if call.session.component.type == "schema" and call.session.definition_version >= 2:
        return VALID_SCHEMA  # edition 2 of the document rules: a schema has its own sections
    return VALID_COMPONENT


def scaffolded(
    conflicts: Sequence[str] = (), failed: Mapping[str, JsonValue] | None = None
) -> Callable[[Call], pb.Result]:
    """A Scaffold whose runner reported ``conflicts`` or a ``failed`` command, else every
    planned file created (read from the plan the command carries)."""

    def answer(call: Call) -> pb.Result:
        plan = json.loads(call.command.shell.argv[-1])
        ok = not conflicts and failed is None
        created = [f["path"] for f in plan["files"]] if ok else []
        body = {
            "created": created,
            "unchanged": [],
            "conflicts": list(conflicts),
            "generated": [],
            "skipped": [],
            "failed": dict(failed) if failed else None,
        }
        return report("ok", stdout=json.dumps(body) + "\n", exit_code=0 if ok else 1)

    return answer


def respond(call: Call) -> pb.Result:
    """The default: every command succeeds."""
    kind = call.command.WhichOneof("kind")
    if kind == "shell" and call.step == "Scaffold":
        return scaffolded()(call)
    if kind == "agent":
        return agent_ok(call)
    if kind == "noop":
        return collected(valid_design(call))(call)
    if call.step == "Initialize":
        return initialized()(call)
    return report(
        "ok",
        data={"commit": f"c0ffee{call.attempt}", "pull_request": {"command": "gh pr create"}},
    )


def script(table: Mapping[tuple[str, str], Sequence[Answer]]) -> Script:
    """A responder: ``table`` first, :func:`respond` for everything else."""
    return Script(table, default=respond)


def context(
    session_type: str = "ContextDesign",
    step: str = "Initialize",
    *,
    params: Mapping[str, JsonValue] | None = None,
    state: Mapping[str, JsonValue] | None = None,
    component: ComponentView | None = None,
    parent_id: str = "",
    session_id: str = "00000000-0000-7000-8000-00000000abcd",
    name: str = "Inventory",
    rounds: Mapping[str, int] | None = None,
    children: Sequence[ChildView] = (),
) -> StepContext:
    """A StepContext as the engine would build it."""
    return StepContext(
        session_id=session_id,
        session_type=session_type,
        account_id="acct",
        project_id="proj",
        user_id="me",
        params=dict(params or {"context": "Inventory"}),
        state=dict(state or {}),
        execution_mode="agentic",
        parent_id=parent_id,
        component=component,
        name=name,
        step=step,
        rounds=dict(rounds or {}),
        children=tuple(children),
    )


def result(
    outcome: Outcome = Outcome.OK,
    *,
    files: Mapping[str, str | bytes | None] | None = None,
    data: Mapping[str, JsonValue] | None = None,
    error: str = "",
) -> ReportedResult:
    collected = tuple(
        CollectedFile(
            path,
            content is not None,
            content.encode() if isinstance(content, str) else content or b"",
        )
        for path, content in (files or {}).items()
    )
    return ReportedResult(outcome, data=dict(data or {}), error_message=error, files=collected)

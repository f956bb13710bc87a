"""A session's page parts: the children tree, a step's detail, its stored output."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom_web import render
from specloom_web.documents import documents_of
from specloom_web.present import Headline, command_view, headline, result_view, step_of
from specloom_web.testruns import run_table
from specloom_web.usage import step_usage

TREE_DEPTH = 3
"""Levels of descendants shown (a context's children and their own children)."""
OUTPUT_PAGE_BYTES = 256 * 1024
"""Stored output shown inline per step; the rest is one link away."""


@dataclass(frozen=True)
class Node:
    """A child in the tree, with its own children."""

    head: Headline
    children: tuple[Node, ...] = ()


def parent_types(workflows: Sequence[pb.WorkflowDescription]) -> frozenset[str]:
    """Session types whose workflows spawn children."""
    return frozenset(w.type for w in workflows if w.child_types)


async def load_tree(
    client: Client, session_id: str, parents: frozenset[str], depth: int = TREE_DEPTH
) -> list[Node]:
    """The descendants of a session, ``depth`` levels deep (siblings read concurrently).

    Only sessions of a type that spawns children are asked for theirs, so a
    leaf costs no call.
    """
    if depth <= 0:
        return []
    children = await client.children(session_id)
    return list(
        await asyncio.gather(*(_node(client, child, parents, depth - 1) for child in children))
    )


async def _node(client: Client, child: pb.Session, parents: frozenset[str], depth: int) -> Node:
    below = await load_tree(client, child.id, parents, depth) if child.type in parents else []
    return Node(headline(child), tuple(below))


def tree_of(children: Sequence[pb.Session], known: Sequence[Node]) -> list[Node]:
    """The tree from fresh heads of the direct children, keeping known grandchildren."""
    below = {node.head.id: node.children for node in known}
    return [Node(headline(child), below.get(child.id, ())) for child in children]


def retry_steps(workflows: Sequence[pb.WorkflowDescription], session: pb.Session) -> list[str]:
    """The steps a session may be retried from (its workflow's, in order)."""
    for workflow in workflows:
        if workflow.type == session.type:
            return [step.name for step in workflow.steps]
    return []


@dataclass(frozen=True)
class Output:
    """Stored output of one step, as shown inline."""

    text: str
    next_index: int
    """Index of the first chunk not included (live chunks from here on are new)."""
    more: bool


async def read_output(client: Client, session_id: str, interaction_id: str) -> Output:
    """The first :data:`OUTPUT_PAGE_BYTES` of a step's stored output."""
    chunks, more = await client.read_output(session_id, interaction_id, max_bytes=OUTPUT_PAGE_BYTES)
    text = b"".join(chunk.data for chunk in chunks).decode("utf-8", errors="replace")
    return Output(text, chunks[-1].index + 1 if chunks else 0, more)


def detail_html(
    session_id: str,
    interaction: pb.Interaction,
    output: Output | None,
    now: dt.datetime,
    waiting_for: str = "",
) -> str:
    """A step's detail: command, result, tests, documents, output.

    ``waiting_for`` is the session's: a pending step shows it instead of running.
    """
    step = step_of(interaction, now, waiting_for=waiting_for)
    pending = interaction.status == pb.INTERACTION_STATUS_PENDING
    has_output = output is not None and (bool(output.text) or pending)
    return render.page(
        "step_detail.html",
        session_id=session_id,
        seq=interaction.seq,
        interaction_id=interaction.id,
        c=command_view(interaction.command),
        r=result_view(interaction),
        usage=step_usage(interaction),
        pending=pending,
        executor=step.executor,
        waiting_for=step.waiting_for,
        tests=run_table(interaction),
        documents=documents_of(interaction),
        has_output=has_output,
        output_text=output.text if output else "",
        output_next=output.next_index if output else 0,
        output_more=output.more if output else False,
    )

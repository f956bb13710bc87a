"""The step library both workflow families are built from.

Every session works in its own worktree on its own branch (:class:`Initialize`,
:class:`ContextInitialize`); agents write files that are checked to exist
(:class:`AgentStep`); commits are exact and land only on the session's branch
(:class:`Commit`, :class:`CommitChildren`); parents fan out and judge their
children themselves, recording them in one typed list (:class:`Spawn`,
:func:`child_spec`), then bring the children's branches together on their own
and deliver them as one commit (:class:`IntegrateChildren`,
:class:`SquashIntegrated`). Params are read one way (:mod:`._params`), failures are
fingerprinted one way (:func:`fingerprint`), and a session's state is a
typed, frozen record (:class:`SessionState`, subclassed per family).

Module map:

- ``_state``: :class:`SessionState` and the records it holds.
- ``_params``: params, what passes to children, agent options, the loop cap.
- ``_found``: collected files relative to the session's worktree.
- ``_rules``: project rules, read once, inherited, composed per prompt.
- ``_verdicts``: fingerprints, git and agent failures.
- ``_initialize``, ``_agent``, ``_commit``, ``_spawn``, ``_integrate``: the steps.
"""

from specloom.workflow._record import StateError, changes, decode, encode
from specloom.workflow.steps._agent import AgentStep
from specloom.workflow.steps._commit import Commit, CommitChildren
from specloom.workflow.steps._found import Found, under
from specloom.workflow.steps._initialize import ContextInitialize, Initialize, step_metadata
from specloom.workflow.steps._integrate import (
    IntegrateChildren,
    SquashIntegrated,
    integration_order,
)
from specloom.workflow.steps._params import (
    AGENT_TIMEOUT_SECONDS,
    CHILD_PARAMS,
    MAX_STORIES,
    MAX_STORY_CHARS,
    STEP_PARAMS,
    AgentOptions,
    agent_options,
    child_params,
    context_of,
    loop_cap,
    profile_of,
    pull_request_wanted,
    story_lines,
    subject_of,
    text_param,
)
from specloom.workflow.steps._rules import project_rules, rules_text
from specloom.workflow.steps._spawn import Spawn, child_spec, kept_text
from specloom.workflow.steps._state import (
    ChildRecord,
    DependencyRef,
    PullRequestRef,
    SessionState,
)
from specloom.workflow.steps._verdicts import (
    agent_failed,
    clip,
    conflicts_of,
    fingerprint,
    git_failed,
    said,
)

__all__ = [
    "AGENT_TIMEOUT_SECONDS",
    "CHILD_PARAMS",
    "MAX_STORIES",
    "MAX_STORY_CHARS",
    "STEP_PARAMS",
    "AgentOptions",
    "AgentStep",
    "ChildRecord",
    "Commit",
    "CommitChildren",
    "ContextInitialize",
    "DependencyRef",
    "Found",
    "Initialize",
    "IntegrateChildren",
    "PullRequestRef",
    "SessionState",
    "Spawn",
    "SquashIntegrated",
    "StateError",
    "agent_failed",
    "agent_options",
    "changes",
    "child_params",
    "child_spec",
    "clip",
    "conflicts_of",
    "context_of",
    "decode",
    "encode",
    "fingerprint",
    "git_failed",
    "integration_order",
    "kept_text",
    "loop_cap",
    "profile_of",
    "project_rules",
    "pull_request_wanted",
    "rules_text",
    "said",
    "step_metadata",
    "story_lines",
    "subject_of",
    "text_param",
    "under",
]

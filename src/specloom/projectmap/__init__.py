"""The project map: what a workspace's components are, what each still needs, what runs next.

A project is contexts and their components, as the context designs list
them. Each component type declares its requirements (:data:`REQUIREMENTS`,
data like the workflow tables): a context needs its design, its
components' designs, a review, its components' tests and code with the
tests passing, and the contexts it depends on done; any other component
needs a design, a test file (a schema does not), code, and passing tests.
Each requirement names the session type that meets it.

Three steps, each pure or nearly so:

- :func:`scan_checkout` reads a checkout (facts only: which files exist,
  their digests, each design's validity, optionally a test run), through
  a cache so a scan after one change reads one file;
- :func:`project_map` judges recorded facts against the requirements, one
  state and one sentence per requirement;
- :func:`next_sessions` turns unmet requirements into the sessions that
  meet them, in dependency order, each naming the entries it waits for.

:func:`with_session_evidence` adds what a finished coding session proves
(its tests passed on the files it delivered), :func:`load_project` reads
the optional project file ``specloom.toml``, and :func:`with_project_params`
adds what only that file knows (user stories) to entries planned without it;
:func:`startable` and :func:`start_params` say which entries can start now
and how (on the line). The data model is the generated protos in
:mod:`specloom.v1.projectmap_pb2`.
"""

from specloom.projectmap._evaluate import judge_component, judge_context, project_map
from specloom.projectmap._evidence import with_session_evidence
from specloom.projectmap._next import next_sessions, with_project_params
from specloom.projectmap._project import PROJECT_FILE, ContextEntry, ProjectFile, load_project
from specloom.projectmap._requirements import (
    COMPONENT_REQUIREMENTS,
    CONTEXT_REQUIREMENTS,
    REQUIREMENTS,
    Requirement,
    not_needed,
    requirements_of,
)
from specloom.projectmap._scan import design_directory, review_path, scan_checkout
from specloom.projectmap._start import STORY_SESSIONS, entry_subject, start_params, startable
from specloom.projectmap._testrun import SCAN_SOURCE, files_digest

__all__ = [
    "COMPONENT_REQUIREMENTS",
    "CONTEXT_REQUIREMENTS",
    "PROJECT_FILE",
    "REQUIREMENTS",
    "SCAN_SOURCE",
    "STORY_SESSIONS",
    "ContextEntry",
    "ProjectFile",
    "Requirement",
    "design_directory",
    "entry_subject",
    "files_digest",
    "judge_component",
    "judge_context",
    "load_project",
    "next_sessions",
    "not_needed",
    "project_map",
    "requirements_of",
    "review_path",
    "scan_checkout",
    "start_params",
    "startable",
    "with_project_params",
    "with_session_evidence",
]

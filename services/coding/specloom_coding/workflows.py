"""The coding family, as declared data: each table reads like DESIGN.md section 4.

- ComponentTest: Initialize → GenerateTestsAndFixtures → RunTests ⇄ FixCompilationErrors
  → Finalize
- ComponentCoding: Initialize → GenerateImplementation → RunTests ⇄ FixTestFailures → Finalize
- ContextTesting: Initialize → SpawnComponentTestSessions → IntegrateChildren ⇄
  ResolveConflicts → RunTests ⇄ FixIntegration → Finalize
- ContextCoding: Initialize → SpawnComponentCodingSessions → IntegrateChildren ⇄
  ResolveConflicts → RunTests ⇄ FixIntegration → Finalize

Definition v2 is built on the kernel's step library: every session, top-level
or child, works in its own worktree on its own branch, commits only there,
and a step that must produce files and finds none is an error. The v1
definitions (``specloom_coding.v1``, frozen) stay registered so sessions
started under them finish under them.

A context's children are spawned in dependency order: each waits for the
children of the components it depends on and starts from their branches,
merged. After the children the parent integrates: it merges every child's
branch into its own worktree (dependencies first; a conflict goes to the
agent's ResolveConflicts and back), runs the context's whole suite there,
and fixes what fails only together (FixIntegration) before Finalize makes
one commit of it on the session's branch and pushes.

Loops are capped by the session's ``max_rounds`` (default 3) on RunTests
and IntegrateChildren; the same failure twice in a row stops the session as
stuck (the RunTests judges give fingerprints of the failing set, the merge
its conflicted files), and Resume restarts the count.
"""

from __future__ import annotations

from specloom.workflow import DONE, ParamSpec, Registry, StepDef, Workflow
from specloom.workflow.steps import STEP_PARAMS, IntegrateChildren
from specloom_coding.component_steps import (
    FinalizeComponent,
    FixCompilationErrors,
    FixTestFailures,
    GenerateImplementation,
    GenerateTestsAndFixtures,
    InitializeComponent,
)
from specloom_coding.context_steps import (
    ChildCheck,
    FinalizeContext,
    InitializeContext,
    SpawnComponents,
)
from specloom_coding.integration_steps import (
    INTEGRATE,
    FixIntegration,
    ResolveConflicts,
    RunContextTests,
    RunContextTestsFirst,
)
from specloom_coding.state import RUN_TESTS
from specloom_coding.test_steps import RunTests, RunTestsFirst
from specloom_coding.v1 import workflows as v1

COMPONENT_PARAMS = {
    "component": ParamSpec(
        "The component: a module name ('inventory.stock') or {name, module_name, type, "
        "description, dependencies}.",
        required=True,
    ),
    "context": ParamSpec("Module name of the context the component belongs to.", kind=str),
    **STEP_PARAMS,
}

CONTEXT_PARAMS = {
    "context": ParamSpec(
        "Module name of the context; its design document lists the components.", required=True
    ),
    **STEP_PARAMS,
}

COMPONENT_TEST = Workflow(
    type="ComponentTest",
    version=2,
    summary="Write a component's tests before its code; they must run and fail.",
    params=COMPONENT_PARAMS,
    steps=(
        StepDef(
            "Initialize",
            InitializeComponent("component-test", session_kind="test"),
            on_ok="GenerateTestsAndFixtures",
        ),
        StepDef("GenerateTestsAndFixtures", GenerateTestsAndFixtures(), on_ok=RUN_TESTS),
        StepDef(RUN_TESTS, RunTestsFirst(), on_ok="Finalize", on_error="FixCompilationErrors"),
        StepDef("FixCompilationErrors", FixCompilationErrors(), on_ok=RUN_TESTS),
        StepDef("Finalize", FinalizeComponent("Add tests for", delivers="test"), on_ok=DONE),
    ),
)

COMPONENT_CODING = Workflow(
    type="ComponentCoding",
    version=2,
    summary="Implement a component until its tests pass; commit its files.",
    params=COMPONENT_PARAMS,
    steps=(
        StepDef(
            "Initialize",
            InitializeComponent("component-coding", session_kind="code"),
            on_ok="GenerateImplementation",
        ),
        StepDef("GenerateImplementation", GenerateImplementation(), on_ok=RUN_TESTS),
        StepDef(RUN_TESTS, RunTests(), on_ok="Finalize", on_error="FixTestFailures"),
        StepDef("FixTestFailures", FixTestFailures(), on_ok=RUN_TESTS),
        StepDef("Finalize", FinalizeComponent("Implement", delivers="code"), on_ok=DONE),
    ),
)

CONTEXT_TESTING = Workflow(
    type="ContextTesting",
    version=2,
    summary=(
        "Write the tests of every component of a context, dependencies first; check they "
        "load and fail together; commit them as one."
    ),
    params=CONTEXT_PARAMS,
    child_types=("ComponentTest",),
    child_versions={"ComponentTest": 2},
    steps=(
        StepDef(
            "Initialize",
            InitializeContext("context-testing", session_kind="test"),
            on_ok="SpawnComponentTestSessions",
        ),
        StepDef(
            "SpawnComponentTestSessions",
            SpawnComponents(
                "ComponentTest",
                ChildCheck(
                    lambda state: state.tests_verified,
                    "its tests were not shown to run and fail",
                    ("test",),
                ),
            ),
            on_ok=INTEGRATE,
        ),
        StepDef(
            INTEGRATE,
            IntegrateChildren("ComponentTest"),
            on_ok=RUN_TESTS,
            on_error="ResolveConflicts",
        ),
        StepDef("ResolveConflicts", ResolveConflicts("test"), on_ok=INTEGRATE),
        StepDef(RUN_TESTS, RunContextTestsFirst(), on_ok="Finalize", on_error="FixIntegration"),
        StepDef("FixIntegration", FixIntegration("test"), on_ok=RUN_TESTS),
        StepDef("Finalize", FinalizeContext("Add tests"), on_ok=DONE),
    ),
)

CONTEXT_CODING = Workflow(
    type="ContextCoding",
    version=2,
    summary=(
        "Implement every component of a context, dependencies first; integrate them, run the "
        "whole suite until it passes; commit them as one and push."
    ),
    params=CONTEXT_PARAMS,
    child_types=("ComponentCoding",),
    child_versions={"ComponentCoding": 2},
    steps=(
        StepDef(
            "Initialize",
            InitializeContext("context-coding", session_kind="code"),
            on_ok="SpawnComponentCodingSessions",
        ),
        StepDef(
            "SpawnComponentCodingSessions",
            SpawnComponents(
                "ComponentCoding",
                ChildCheck(
                    lambda state: state.tests_passed, "its tests do not pass", ("code", "test")
                ),
            ),
            on_ok=INTEGRATE,
        ),
        StepDef(
            INTEGRATE,
            IntegrateChildren("ComponentCoding"),
            on_ok=RUN_TESTS,
            on_error="ResolveConflicts",
        ),
        StepDef("ResolveConflicts", ResolveConflicts("code"), on_ok=INTEGRATE),
        StepDef(RUN_TESTS, RunContextTests(), on_ok="Finalize", on_error="FixIntegration"),
        StepDef("FixIntegration", FixIntegration("code"), on_ok=RUN_TESTS),
        StepDef("Finalize", FinalizeContext("Implement"), on_ok=DONE),
    ),
)

WORKFLOWS = (COMPONENT_TEST, COMPONENT_CODING, CONTEXT_TESTING, CONTEXT_CODING)
"""The current (v2) definitions."""

REGISTRY = Registry([*v1.WORKFLOWS, *WORKFLOWS])
"""Every workflow the coding service serves: v2 for new sessions, v1 for those still running."""

__all__ = [
    "COMPONENT_CODING",
    "COMPONENT_TEST",
    "CONTEXT_CODING",
    "CONTEXT_TESTING",
    "REGISTRY",
    "WORKFLOWS",
]

"""The coding family at definition v1 (frozen; see ``specloom_coding.v1``).

- ComponentTest: Initialize → GenerateTestsAndFixtures → RunTests ⇄ FixCompilationErrors
  → Finalize
- ComponentCoding: Initialize → GenerateImplementation → RunTests ⇄ FixTestFailures → Finalize
- ContextTesting: Initialize → SpawnComponentTestSessions → Finalize
- ContextCoding: Initialize → SpawnComponentCodingSessions → Finalize

Loops are capped by the session's ``max_rounds`` (default 3) on RunTests;
the same failure twice in a row stops the session as stuck (the RunTests
judges give fingerprints of the failing set), and Resume restarts the count.
"""

from __future__ import annotations

from specloom.workflow import DONE, ParamSpec, StepDef, Workflow
from specloom_coding.v1.component_steps import (
    RUN_TESTS,
    FinalizeComponent,
    FixCompilationErrors,
    FixTestFailures,
    GenerateImplementation,
    GenerateTestsAndFixtures,
    InitializeComponent,
)
from specloom_coding.v1.context_steps import (
    ChildCheck,
    FinalizeContext,
    InitializeContext,
    SpawnComponents,
)
from specloom_coding.v1.test_steps import RunTests, RunTestsFirst

RULES = ParamSpec(
    "Extra rules: markdown texts with component_type/session_type front matter.", kind=list
)

COMPONENT_PARAMS = {
    "component": ParamSpec(
        "The component: a module name ('inventory.stock') or {name, module_name, type, "
        "description, dependencies}.",
        required=True,
    ),
    "context": ParamSpec("Module name of the context the component belongs to.", kind=str),
    "base": ParamSpec("Start point of the session branch (default: the current HEAD).", kind=str),
    "rules": RULES,
}

CONTEXT_PARAMS = {
    "context": ParamSpec(
        "Module name of the context; its design document lists the components.", required=True
    ),
    "base": ParamSpec("Start point of the session branch and base of the pull request.", kind=str),
    "rules": RULES,
}

COMPONENT_TEST = Workflow(
    type="ComponentTest",
    version=1,
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
        StepDef("Finalize", FinalizeComponent("Add tests for"), on_ok=DONE),
    ),
)

COMPONENT_CODING = Workflow(
    type="ComponentCoding",
    version=1,
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
        StepDef("Finalize", FinalizeComponent("Implement"), on_ok=DONE),
    ),
)

CONTEXT_TESTING = Workflow(
    type="ContextTesting",
    version=1,
    summary="Write the tests of every component of a context; commit them together.",
    params=CONTEXT_PARAMS,
    child_types=("ComponentTest",),
    child_versions={"ComponentTest": 1},
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
                ChildCheck("tests_verified", "its tests were not shown to run and fail", ("test",)),
            ),
            on_ok="Finalize",
        ),
        StepDef("Finalize", FinalizeContext("Add tests"), on_ok=DONE),
    ),
)

CONTEXT_CODING = Workflow(
    type="ContextCoding",
    version=1,
    summary="Implement every component of a context; commit all files together and push.",
    params=CONTEXT_PARAMS,
    child_types=("ComponentCoding",),
    child_versions={"ComponentCoding": 1},
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
                ChildCheck("tests_passed", "its tests do not pass", ("code", "test")),
            ),
            on_ok="Finalize",
        ),
        StepDef("Finalize", FinalizeContext("Implement"), on_ok=DONE),
    ),
)

WORKFLOWS = (COMPONENT_TEST, COMPONENT_CODING, CONTEXT_TESTING, CONTEXT_CODING)
"""The v1 definitions, kept so sessions started on them finish on them."""

__all__ = [
    "COMPONENT_CODING",
    "COMPONENT_TEST",
    "CONTEXT_CODING",
    "CONTEXT_TESTING",
    "WORKFLOWS",
]

"""The workflow kernel: workflows as declared data, decisions as a pure fold.

A workflow is a table of :class:`StepDef` rows; a step is a pair of pure
functions (build the command, judge the result). The next step is a pure
function of the definition and the session's history (:func:`fold`), kept
incrementally as :class:`Progress` so deciding costs the same at step 10 and
step 10,000.
"""

from specloom.workflow._context import (
    BRANCH_STATE_KEY,
    DEPENDENCIES_STATE_KEY,
    ChildSpec,
    ChildView,
    CollectedFile,
    CommandPlan,
    ComponentView,
    Dependency,
    Judgement,
    ReportedResult,
    StepContext,
    dependencies_of,
)
from specloom.workflow._model import (
    COMMON_PARAMS,
    DEFAULT_MAX_ROUNDS,
    DONE,
    SAME,
    CommandKind,
    Outcome,
    ParamSpec,
    Registry,
    Step,
    StepDef,
    Workflow,
    max_rounds_of,
)
from specloom.workflow._progress import (
    Control,
    Decision,
    Progress,
    Record,
    apply,
    fold,
    initial,
)

__all__ = [
    "BRANCH_STATE_KEY",
    "COMMON_PARAMS",
    "DEFAULT_MAX_ROUNDS",
    "DEPENDENCIES_STATE_KEY",
    "DONE",
    "SAME",
    "ChildSpec",
    "ChildView",
    "CollectedFile",
    "CommandKind",
    "CommandPlan",
    "ComponentView",
    "Control",
    "Decision",
    "Dependency",
    "Judgement",
    "Outcome",
    "ParamSpec",
    "Progress",
    "Record",
    "Registry",
    "ReportedResult",
    "Step",
    "StepContext",
    "StepDef",
    "Workflow",
    "apply",
    "dependencies_of",
    "fold",
    "initial",
    "max_rounds_of",
]

"""Checking a workflow's start parameters, and deriving a session's subject."""

from __future__ import annotations

from collections.abc import Mapping

from specloom.errors import InvalidArgument
from specloom.protoconv import JsonValue
from specloom.workflow import ComponentView, Workflow

_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def validate_params(workflow: Workflow, params: Mapping[str, JsonValue]) -> None:
    """Refuse unknown, missing or mistyped parameters with a message naming them."""
    specs = workflow.all_params()
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise InvalidArgument(
            f"unknown parameter(s) for {workflow.type}: {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(specs))}"
        )
    for name, spec in specs.items():
        value = params.get(name)
        if value is None:
            if spec.required:
                raise InvalidArgument(f"parameter {name!r} is required for {workflow.type}")
            continue
        if name == "component" and isinstance(value, str | dict):
            continue  # a module name or a full component object
        ok = isinstance(value, spec.kind) and not (spec.kind is int and isinstance(value, bool))
        if not ok:
            wanted = _KIND_NAMES.get(spec.kind, spec.kind.__name__)
            raise InvalidArgument(f"parameter {name!r} of {workflow.type} must be {wanted}")
        if spec.kind is str and spec.required and not str(value).strip():
            raise InvalidArgument(f"parameter {name!r} of {workflow.type} must not be empty")
        if spec.problem is not None and isinstance(value, str) and value.strip():
            problem = spec.problem(value.strip())
            if problem is not None:
                raise InvalidArgument(
                    f"parameter {name!r} of {workflow.type} is {value!r}: {problem}"
                )
        if spec.choices and value not in spec.choices:
            # Refused at start, not by the first step that reads it.
            raise InvalidArgument(
                f"unknown {name} {value!r}; use one of: {', '.join(spec.choices)}"
            )
    component = component_of(params)
    if "component" in params and (component is None or "." not in component.module_name):
        raise InvalidArgument(
            "parameter 'component' needs a fully qualified module name (with a '.'), "
            "e.g. 'inventory.stock'"
        )


def component_of(params: Mapping[str, JsonValue]) -> ComponentView | None:
    """The component a session works on, from its ``component`` parameter."""
    value = params.get("component")
    if isinstance(value, str) and value.strip():
        module = value.strip()
        return ComponentView(name=module.rsplit(".", 1)[-1], module_name=module, type="other")
    if isinstance(value, dict):
        view = ComponentView.from_dict(value)
        if not view.module_name:
            return None
        if not view.name:
            view = ComponentView(
                name=view.module_name.rsplit(".", 1)[-1],
                module_name=view.module_name,
                type=view.type or "other",
                description=view.description,
                dependencies=view.dependencies,
            )
        return view
    return None


def subject_of(workflow: Workflow, params: Mapping[str, JsonValue]) -> str:
    """A session's display name: the workflow's own rule, else context or component."""
    if workflow.subject is not None:
        return workflow.subject(params)
    context = params.get("context")
    if isinstance(context, str) and context:
        return context
    component = component_of(params)
    if component is not None:
        return component.module_name
    return workflow.type

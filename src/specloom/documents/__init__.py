"""Design documents: parsing, validation and the spec agents are given.

A design document is markdown with required H2 sections per component type
(:data:`DESIGN_SPECS`: a context's ten, a schema's Purpose, Fields and Test
Assertions, every other type's Purpose, Public API, Execution Flow and Test
Assertions); a context's Components section lists its components as H3
module names with a ``| field | value |`` table and a description. The
rules come in editions: sessions of the frozen v1 definitions keep edition
1 (every non-context type the same four sections) by passing ``edition=1``.
:func:`validate_design` gives specific errors (they become the revise
prompt) or, for a valid context, the components the component-design
sessions fan out over. The components'
dependencies on each other form a graph (:func:`dependency_graph`: the order
children are created in, and what each waits for); a cycle or a name that is
no component is a validation error. The coding family reads context designs
through the same functions.
"""

from specloom.documents._graph import (
    DependencyError,
    DependencyGraph,
    context_namespace,
    dependency_graph,
    graph_problems,
)
from specloom.documents._markdown import (
    MAX_DOCUMENT_BYTES,
    Body,
    Document,
    DocumentRejected,
    Heading,
    Section,
    Table,
    parse,
    section_key,
)
from specloom.documents._spec import (
    DESIGN_SPECS,
    EDITION,
    EDITIONS,
    FIELD_COLUMNS,
    MIN_REVIEW_CHARS,
    SCHEMA_SECTIONS,
    DesignSpec,
    design_spec,
    document_spec,
    optional_sections,
    required_sections,
    review_spec,
)
from specloom.documents._types import (
    COMPONENT_SECTIONS,
    COMPONENT_TYPES,
    CONTEXT,
    CONTEXT_SECTIONS,
    MAX_DESCRIPTION,
    section_title,
)
from specloom.documents._validate import (
    MAX_ERRORS,
    DesignReport,
    folded_name,
    is_module_name,
    validate_design,
    validate_review,
)

__all__ = [
    "COMPONENT_SECTIONS",
    "COMPONENT_TYPES",
    "CONTEXT",
    "CONTEXT_SECTIONS",
    "DESIGN_SPECS",
    "EDITION",
    "EDITIONS",
    "FIELD_COLUMNS",
    "MAX_DESCRIPTION",
    "MAX_DOCUMENT_BYTES",
    "MAX_ERRORS",
    "MIN_REVIEW_CHARS",
    "SCHEMA_SECTIONS",
    "Body",
    "DependencyError",
    "DependencyGraph",
    "DesignReport",
    "DesignSpec",
    "Document",
    "DocumentRejected",
    "Heading",
    "Section",
    "Table",
    "context_namespace",
    "dependency_graph",
    "design_spec",
    "document_spec",
    "folded_name",
    "graph_problems",
    "is_module_name",
    "optional_sections",
    "parse",
    "required_sections",
    "review_spec",
    "section_key",
    "section_title",
    "validate_design",
    "validate_review",
]

"""Templates: whole pages, and the fragments live streams send to replace parts of them.

One Jinja environment with autoescaping on for everything; a fragment is a
macro of ``fragments.html``, so a page and a live update render the same
markup from the same code.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENV = Environment(
    loader=PackageLoader("specloom_web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(name: str, **context: Any) -> str:
    """A whole page."""
    return _ENV.get_template(name).render(**context)


def fragment(macro: str, *args: Any, **kwargs: Any) -> str:
    """One macro of ``fragments.html`` rendered alone (a live update)."""
    module = _ENV.get_template("fragments.html").module
    return str(getattr(module, macro)(*args, **kwargs))

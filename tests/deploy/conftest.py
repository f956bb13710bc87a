"""Rendered manifests, once per test session."""

from __future__ import annotations

import os

import pytest

from tests.deploy.manifests import K8S, OVERLAYS, Manifest, kubectl, render


@pytest.fixture(scope="session")
def kubectl_path() -> str:
    path = kubectl()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing in CI: the deploy checks would not run")
        pytest.skip(
            "kubectl is not installed: the manifests cannot be rendered "
            "(install kubectl, which has kustomize built in, to run these tests)"
        )
    return path


@pytest.fixture(scope="session")
def rendered(kubectl_path: str) -> dict[str, list[Manifest]]:
    """Every overlay (and the base alone), rendered by ``kubectl kustomize``."""
    trees = {"base": K8S / "base"} | {name: K8S / "overlays" / name for name in OVERLAYS}
    return {name: render(kubectl_path, path) for name, path in trees.items()}


@pytest.fixture(scope="session")
def dev(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["dev"]


@pytest.fixture(scope="session")
def production(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["production"]


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    """Each overlay in turn: properties every install must have."""
    name: str = request.param
    return rendered[name]

"""The install and upgrade steps in docs/deploy.md apply subsets that stand alone.

``kubectl apply -k OVERLAY -l SELECTOR`` applies only the rendered objects
whose labels match. Each subset the guide applies before the rest (the dev
database, the migration Job, Sessions with its configuration) must carry
everything its pods refer to, or they would wait on objects not created yet.
"""

from __future__ import annotations

import re

from tests.deploy.manifests import ROOT, Manifest, containers, key, of_kind, pod_spec

GUIDE = (ROOT / "docs" / "deploy.md").read_text()
SELECTOR = re.compile(r"kubectl apply -k \S+ -l ('[^']+'|\S+)")


def guide_selectors() -> list[str]:
    return [match.strip("'") for match in SELECTOR.findall(GUIDE)]


def matches(selector: str, labels: dict[str, str]) -> bool:
    """kubectl's label selector, in the two forms the guide uses."""
    for term in re.split(r",(?![^(]*\))", selector):
        term = term.strip()
        set_form = re.fullmatch(r"(\S+) in \(([^)]*)\)", term)
        if set_form:
            values = {v.strip() for v in set_form.group(2).split(",")}
            if labels.get(set_form.group(1)) not in values:
                return False
            continue
        name, _, value = term.partition("=")
        if labels.get(name) != value:
            return False
    return True


def subset(objects: list[Manifest], selector: str) -> list[Manifest]:
    return [o for o in objects if matches(selector, o["metadata"].get("labels", {}))]


def test_the_guide_applies_the_database_migration_and_sessions_first() -> None:
    assert guide_selectors() == [
        "app.kubernetes.io/component=database",
        "app.kubernetes.io/component=migrate",
        "app.kubernetes.io/component=migrate",
        "app.kubernetes.io/component in (config,sessions)",
    ]


def test_each_subset_holds_what_its_pods_refer_to(
    dev: list[Manifest], production: list[Manifest]
) -> None:
    expected = {
        "app.kubernetes.io/component=database": {"StatefulSet/postgres"},
        "app.kubernetes.io/component=migrate": {"Job/specloom-migrate"},
        "app.kubernetes.io/component in (config,sessions)": {"Deployment/sessions"},
    }
    for objects, overlay in ((dev, "dev"), (production, "production")):
        for selector in set(guide_selectors()):
            chosen = subset(objects, selector)
            if selector.endswith("=database") and overlay == "production":
                assert not chosen, "production has no database of its own"
                continue
            pods = [o for o in chosen if o["kind"] in ("Deployment", "StatefulSet", "Job")]
            assert {key(p) for p in pods} == expected[selector], (overlay, selector)
            present = {key(o) for o in chosen}
            for workload in pods:
                spec = pod_spec(workload)
                assert f"ServiceAccount/{spec['serviceAccountName']}" in present
                for container in containers(workload):
                    for source in container.get("envFrom", []):
                        ref = source["configMapRef"]["name"]
                        assert f"ConfigMap/{ref}" in present, (overlay, selector, ref)
            if "sessions" in selector:
                assert {"Service/sessions", "PodDisruptionBudget/sessions"} <= present


def test_selectors_see_no_stray_objects(dev: list[Manifest]) -> None:
    # Only the migration Job and its account carry the migrate label, so
    # deleting and re-applying it touches nothing else.
    migrate = subset(dev, "app.kubernetes.io/component=migrate")
    assert {key(o) for o in migrate} == {"Job/specloom-migrate", "ServiceAccount/specloom-migrate"}
    assert len(of_kind(subset(dev, "app.kubernetes.io/component=config"), "ConfigMap")) == 1

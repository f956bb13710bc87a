"""Scaffolding plans per profile, and the runner that carries them out, for real.

The runner runs as the executor runs it (``python3 -c <source> <plan>``, a
real subprocess) in a real git repository: it creates the Python
skeletons and their import check passes, a second run changes nothing
(idempotent), an existing file with other content is a conflict that
writes nothing, and a failing check comes back in the tool's own words.
The Elixir profile's Phoenix generators come from Hex, which this machine
cannot reach: their argv is checked exactly, built from a design with a
schema and the schema design's Fields table; ``mix compile`` runs for real
on a ``mix new`` project with a scaffolded module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from specloom.errors import InvalidArgument
from specloom.orchestration.simulate import Call, Simulation, report
from specloom.profiles import (
    PlannedCommand,
    ScaffoldComponent,
    ScaffoldPlan,
    ScaffoldReport,
    SchemaField,
    get_profile,
)
from specloom.profiles._scaffold import MAX_PLAN_BYTES
from specloom.profiles.elixir import ecto_type, table_name
from specloom.v1 import common_pb2 as pb
from specloom_context_design.scaffold import schema_fields
from specloom_context_design.workflows import REGISTRY
from tests.context_design.test_review_end_to_end import git
from tests.context_design.world import script
from tests.documents.samples import VALID_CONTEXT, VALID_SCHEMA

PYTHON = get_profile("python")
ELIXIR = get_profile("elixir")

INVENTORY = [
    ScaffoldComponent("Inventory.Stock", "schema", "The quantity of one product."),
    ScaffoldComponent("Inventory.Warehouses", "repository", 'Where "things" are \\ kept.'),
    ScaffoldComponent("Inventory.Audit.Log", "module", "What changed, and when."),
]


def run(plan: ScaffoldPlan, where: Path) -> tuple[int, ScaffoldReport, str]:
    done = subprocess.run(plan.argv(), cwd=where, capture_output=True, text=True, check=False)
    return done.returncode, ScaffoldReport.parse(done.stdout), done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root


def test_the_python_plan_names_every_package_module_and_test_skeleton() -> None:
    plan = PYTHON.scaffold("Inventory", INVENTORY)
    assert [(f.path, f.keep_existing) for f in plan.files] == [
        ("src/inventory/__init__.py", True),
        ("src/inventory/audit/__init__.py", True),
        ("src/inventory/audit/log.py", False),
        ("src/inventory/stock.py", False),
        ("src/inventory/warehouses.py", False),
        ("tests/inventory/audit/log_test.py", True),
        # no test of a schema's own: it is tested through its context
        ("tests/inventory/warehouses_test.py", True),
    ]
    assert plan.checks[0] == (
        "python",
        "-c",
        "import inventory, inventory.audit, inventory.audit.log, inventory.stock, "
        "inventory.warehouses",
    )
    assert plan.checks[1][-2:] == (
        "tests/inventory/audit/log_test.py",
        "tests/inventory/warehouses_test.py",
    )
    assert plan.generators == ()


def test_python_scaffolding_runs_imports_and_a_retry_changes_nothing(repo: Path) -> None:
    plan = PYTHON.scaffold("Inventory", INVENTORY)
    code, report, _ = run(plan, repo)
    assert code == 0, report.errors()
    assert report.ok
    assert report.created == tuple(f.path for f in plan.files)
    warehouses = (repo / "src/inventory/warehouses.py").read_text()
    assert warehouses.startswith('"""Inventory.Warehouses: Where \\"things\\" are \\\\ kept.')
    # No bytecode or other strays: only what the plan names is new.
    untracked = git(repo, "ls-files", "--others").split()
    assert sorted(untracked) == sorted(f.path for f in plan.files)

    code, again, _ = run(plan, repo)
    assert code == 0
    assert again.ok
    assert again.created == ()
    assert again.unchanged == report.created  # already scaffolded: a retry is idempotent
    assert again.files() == report.files()


def test_an_existing_module_with_other_content_is_a_conflict_and_nothing_is_written(
    repo: Path,
) -> None:
    (repo / "src/inventory").mkdir(parents=True)
    (repo / "src/inventory/stock.py").write_text("STOCK = 1\n")
    (repo / "src/inventory/__init__.py").write_text('"""Ours."""\n')
    code, report, _ = run(PYTHON.scaffold("Inventory", INVENTORY), repo)
    assert code == 1
    assert report.conflicts == ("src/inventory/stock.py",)
    assert report.kept == ("src/inventory/__init__.py",)
    assert report.created == ()
    assert report.errors() == (
        "conflict: src/inventory/stock.py already exists with different content; "
        "scaffolding never overwrites a file",
    )
    assert (repo / "src/inventory/stock.py").read_text() == "STOCK = 1\n"
    assert not (repo / "src/inventory/warehouses.py").exists()


def test_a_failing_import_check_reports_the_tools_own_message(repo: Path) -> None:
    (repo / "src/inventory").mkdir(parents=True)
    (repo / "src/inventory/__init__.py").write_text("def broken(:\n")  # kept, but broken
    code, report, stderr = run(PYTHON.scaffold("Inventory", INVENTORY), repo)
    assert code == 1
    assert report.failed is not None
    assert report.failed.check
    assert report.failed.argv[:2] == ("python", "-c")
    assert "SyntaxError" in report.failed.output
    assert "SyntaxError" in stderr  # passed on as it printed
    (error,) = report.errors()
    assert error.startswith("check `python -c import inventory, ")
    assert "exited with code 1:\n" in error


def test_a_failing_generator_stops_the_run_and_says_what_it_created(repo: Path) -> None:
    plan = ScaffoldPlan(
        generators=(
            PlannedCommand(("python3", "-c", "open('made.txt', 'w').write('x')")),
            PlannedCommand(("python3", "-c", "import sys; sys.exit('** (Mix) no such task')")),
            PlannedCommand(("python3", "-c", "open('never.txt', 'w').write('x')")),
        ),
        checks=(("false",),),
    )
    code, report, _ = run(plan, repo)
    assert code == 1
    assert report.generated == ("made.txt",)
    assert report.failed is not None
    assert not report.failed.check
    assert report.failed.output.strip() == "** (Mix) no such task"
    assert not (repo / "never.txt").exists()
    # Run again: the generator whose output exists is skipped.
    skipping = replace(
        plan, generators=(replace(plan.generators[0], creates="made.txt"), *plan.generators[1:])
    )
    _, again, _ = run(skipping, repo)
    assert again.skipped == ("python3 -c open('made.txt', 'w').write('x')",)


def test_a_plan_too_large_for_one_argument_is_refused_by_name() -> None:
    huge = [ScaffoldComponent(f"Inventory.Part{n}", "module", "x" * 2000) for n in range(80)]
    with pytest.raises(InvalidArgument, match=f"over the {MAX_PLAN_BYTES}-byte limit"):
        PYTHON.scaffold("Inventory", huge).argv()


# -- Elixir -------------------------------------------------------------------------------


def test_the_schema_designs_fields_table_is_read() -> None:
    assert schema_fields(VALID_SCHEMA) == (
        SchemaField("product_id", "integer", True),
        SchemaField("quantity", "integer", True),
    )
    assert schema_fields("# Inventory.Stock\n\n## Purpose\nNo fields.\n") == ()


def test_the_elixir_generators_are_built_from_the_design_as_exact_argv() -> None:
    fields = schema_fields(VALID_SCHEMA)
    components = [
        ScaffoldComponent("MyApp.Inventory.Stock", "schema", fields=fields),
        ScaffoldComponent(
            "MyApp.Inventory.Category",
            "schema",
            fields=(
                SchemaField("id", "uuid"),  # the generator adds it
                SchemaField("title", "varchar(80)"),
                SchemaField("active", "bool"),
                SchemaField("opened_at", "datetime"),
                SchemaField("colour", "hue"),
            ),
        ),
        ScaffoldComponent("MyApp.Inventory.Restocker", "genserver", "Restocks at night."),
    ]
    plan = ELIXIR.scaffold("MyApp.Inventory", components)
    assert [(g.argv, g.creates) for g in plan.generators] == [
        (
            (
                "mix",
                "phx.gen.context",
                "Inventory",
                "Stock",
                "stocks",
                "product_id:integer",
                "quantity:integer",
            ),
            "lib/my_app/inventory/stock.ex",
        ),
        (
            (
                "mix",
                "phx.gen.schema",
                "Inventory.Category",
                "categories",
                "title:string",
                "active:boolean",
                "opened_at:utc_datetime",
                "colour:string",
            ),
            "lib/my_app/inventory/category.ex",
        ),
    ]
    assert [(f.path, f.keep_existing) for f in plan.files] == [
        ("lib/my_app/inventory/restocker.ex", False),
        ("test/my_app/inventory/restocker_test.exs", True),
    ]
    assert plan.checks == (("mix", "compile"),)


def test_elixir_names_types_and_refusals() -> None:
    assert [table_name(n) for n in ("Stock", "Category", "Box", "Warehouses")] == [
        "stocks",
        "categories",
        "boxes",
        "warehouses",
    ]
    assert ecto_type("integer (>= 0)") == "integer"
    assert ecto_type("") == "string"
    bad = ScaffoldComponent("MyApp.Inventory.Stock", "schema", fields=(SchemaField("a b", "x"),))
    with pytest.raises(InvalidArgument, match="not a module name"):
        ELIXIR.scaffold("MyApp.Inventory", [bad])
    outside = ScaffoldComponent("MyApp.Billing.Invoice", "schema")
    with pytest.raises(InvalidArgument, match=r"is not inside context 'MyApp\.Inventory'"):
        ELIXIR.scaffold("MyApp.Inventory", [outside])


@pytest.mark.skipif(shutil.which("mix") is None, reason="mix (Elixir) is not installed")
def test_mix_compile_runs_for_real_on_a_mix_new_project(tmp_path: Path) -> None:
    subprocess.run(["mix", "new", "shop"], cwd=tmp_path, check=True, capture_output=True)
    project = tmp_path / "shop"
    git(project, "init", "-q", "-b", "main")
    components = [
        ScaffoldComponent("Shop.Inventory.Restocker", "genserver", 'Restocks "#{at}" night.'),
        ScaffoldComponent("Shop.Inventory.Pricing", "module", "Prices in cents."),
    ]
    # No schema, so no Phoenix generator: the context gets a module skeleton too.
    plan = ELIXIR.scaffold("Shop.Inventory", components)
    assert plan.generators == ()
    code, report, stderr = run(plan, project)
    assert code == 0, (report.errors(), stderr)
    assert report.ok
    assert report.created == (
        "lib/shop/inventory.ex",
        "lib/shop/inventory/pricing.ex",
        "lib/shop/inventory/restocker.ex",
        "test/shop/inventory/pricing_test.exs",
        "test/shop/inventory/restocker_test.exs",
    )
    beams = project / "_build/dev/lib/shop/ebin"
    assert (beams / "Elixir.Shop.Inventory.Restocker.beam").exists()
    assert (beams / "Elixir.Shop.Inventory.beam").exists()

    # A module that does not compile: mix's own message is the failure.
    (project / "lib/shop/inventory/pricing.ex").write_text("defmodule Shop.Inventory.Pricing do\n")
    code, broken, _ = run(plan, project)
    assert code == 1
    assert broken.conflicts == ("lib/shop/inventory/pricing.ex",)
    (project / "lib/shop/inventory/pricing.ex").unlink()
    (project / "lib/shop/inventory.ex").write_text(
        "defmodule Shop.Inventory do\n  def x(, do: 1\nend\n"
    )
    code, failed, _ = run(replace(plan, files=plan.files[1:]), project)
    assert code == 1
    assert failed.failed is not None
    assert failed.failed.argv == ("mix", "compile")
    assert "lib/shop/inventory.ex" in failed.failed.output


async def test_an_elixir_context_design_scaffolds_with_its_schema_designs_fields() -> None:
    """Through the engine: ValidateDesign collects the schema designs already in the
    worktree, and Scaffold's generator argv carries their fields."""

    def validated(call: Call) -> pb.Result:
        context_path, designs = call.command.collect_files
        assert designs == "docs/design/inventory/**/*.md"
        return report(
            "ok",
            files={context_path: VALID_CONTEXT, "docs/design/inventory/stock.md": VALID_SCHEMA},
        )

    sim = Simulation(REGISTRY, script({("", "ValidateDesign"): [validated]}))
    sim.start("ContextDesign", {"context": "Inventory", "profile": "elixir"})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    (scaffold,) = [i for i in sim.history() if i.step == "Scaffold"]
    plan = json.loads(scaffold.command.shell.argv[-1])
    assert plan["generators"] == [
        {
            "argv": [
                "mix",
                "phx.gen.context",
                "Inventory",
                "Stock",
                "stocks",
                "product_id:integer",
                "quantity:integer",
            ],
            "creates": "lib/inventory/stock.ex",
        }
    ]
    assert plan["checks"] == [["mix", "compile"]]
    assert [f["path"] for f in plan["files"]] == [
        "lib/inventory/warehouses.ex",
        "test/inventory/warehouses_test.exs",
    ]

"""Imports run one way, from higher layers down to lower ones, and never in a circle.

The layers, lowest first (docs/structure.md, "Where things are", says what each holds):

    lib  <  derouter, work  <  ledger  <  accounts  <  mirror, exports, branding  <  analytics
         <  dashboard  <  automation, ops  <  payments  <  portal

Every module (services and pages alike) imports only its own package or packages of a
lower layer. What it may take from a lower package is a service: never a page module
(views, URL confs, admin, management commands), a template tag library, or a private
name (one starting with "_"). Only URL confs import another package's views, to route
to them. Packages on one layer do not import each other, so no cycle can hide between
them; and no cycle runs inside a package either, imports inside functions included.
``config`` (settings, root URLs, WSGI) sits above everything.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "lib": 0,
    "derouter": 1,
    "work": 1,
    "ledger": 2,
    "accounts": 3,
    "mirror": 4,
    "exports": 4,
    "branding": 4,
    "analytics": 5,
    "dashboard": 6,
    "automation": 7,
    "ops": 7,
    "payments": 8,
    "portal": 9,
}
PRODUCT_PACKAGES = (*LAYERS, "config")
PAGE_MODULE_NAMES = {"views", "urls", "admin", "apps"}


def _is_page(parts):
    """Entry points: views (or a views package), URL confs, admin, app configs and management commands."""
    if "management" in parts or "views" in parts:
        return True
    name = parts[-1]
    return name in PAGE_MODULE_NAMES or name.endswith(("_views", "_urls"))


def _is_url_conf(parts):
    """URL confs wire pages together, so they alone may import another package's views."""
    return parts[-1] == "urls" or parts[-1].endswith("_urls")


def _modules(packages=LAYERS):
    """(dotted name parts, path) of every product module; a package's __init__ is the package itself."""
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield parts, path


def _imports(path, known):
    """(module parts, imported name or None) for every absolute import in the file, at any depth.

    "from dashboard import topups" imports the module dashboard.topups; "from dashboard.topups
    import top_up" imports the name top_up of that module.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield tuple(alias.name.split(".")), None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = tuple(node.module.split("."))
            for alias in node.names:
                if base + (alias.name,) in known:
                    yield base + (alias.name,), None
                else:
                    yield base, alias.name


def _problem(importer, target, name):
    """What is wrong with ``importer`` importing ``name`` (or the module) from ``target``, or None."""
    package, target_package = importer[0], target[0]
    if target_package not in LAYERS or target_package == package:
        return None
    if _is_page(target):
        return None if _is_url_conf(importer) and LAYERS[target_package] < LAYERS.get(package, 99) else "a page module"
    if "templatetags" in target:
        return "a template tag library"
    if name and name.startswith("_"):
        return f"the private name {name}"
    if package in LAYERS and LAYERS[target_package] >= LAYERS[package]:
        return f"layer {LAYERS[target_package]}, not below {package}'s {LAYERS[package]}"
    return None


def _violations():
    known = {parts for parts, _ in _modules(PRODUCT_PACKAGES)}
    for parts, path in _modules():
        for target, name in _imports(path, known):
            problem = _problem(parts, target, name)
            if problem:
                yielded = ".".join(target) + (f".{name}" if name else "")
                yield f"{'.'.join(parts)} imports {yielded}: {problem}"


def _import_graph():
    """Module -> the product modules it imports (a name imported from a module counts as the module)."""
    known = {parts for parts, _ in _modules(PRODUCT_PACKAGES)}
    graph = {}
    for parts, path in _modules(PRODUCT_PACKAGES):
        edges = set()
        for target, _name in _imports(path, known):
            while target and target not in known:
                target = target[:-1]
            if target and target != parts:
                edges.add(target)
        graph[parts] = edges
    return graph


def _cycles(graph):
    """Every set of two or more modules that import each other round a circle (Tarjan's strongly connected components)."""
    index, lowlink, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                lowlink[module] = min(lowlink[module], lowlink[target])
            elif target in on_stack:
                lowlink[module] = min(lowlink[module], index[target])
        if lowlink[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(".".join(parts) for parts in component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_upward_or_sideways():
    assert list(_violations()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_sees_a_circle_through_a_function_level_import(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def later():\n    from automation import tasks\n")
    known = {("automation", "tasks"), ("automation", "alerts")}
    assert list(_imports(module, known)) == [(("automation", "tasks"), None)]
    graph = {("automation", "alerts"): {("automation", "tasks")}, ("automation", "tasks"): {("automation", "alerts")}}
    assert _cycles(graph) == [["automation.alerts", "automation.tasks"]]
    assert _cycles({("a",): {("b",)}, ("b",): set()}) == []


def test_the_layer_check_sees_upward_page_tag_and_private_imports(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("from dashboard import audit\nimport lib.money\nfrom mirror.ingest import _rows\n")
    assert list(_imports(module, {("dashboard", "audit")})) == [
        (("dashboard", "audit"), None),
        (("lib", "money"), None),
        (("mirror", "ingest"), "_rows"),
    ]
    assert _problem(("accounts", "user_views"), ("dashboard", "audit"), None)
    assert _problem(("exports", "views"), ("portal", "views"), "render_page")
    assert _problem(("dashboard", "views", "keys"), ("analytics", "templatetags", "analytics"), "days_left")
    assert _problem(("dashboard", "views", "keys"), ("mirror", "ingest"), "_rows")
    assert _problem(("mirror", "sync"), ("exports", "writer"), None)
    assert not _problem(("dashboard", "views", "keys"), ("analytics", "forecast"), "describe_days_left")
    assert not _problem(("portal", "urls"), ("analytics", "portal_views"), None)
    assert _is_page(("dashboard", "views", "keys")) and _is_page(("portal", "urls"))
    assert not _is_page(("dashboard", "topups"))


# derouter.client's key writes. Pages and the worker write keys through dashboard.keywrites (create, edit,
# delete) and move money through dashboard.topups (top-ups, reclaims); derouter.probe (check_upstream) is
# the one other caller, on purpose: it makes the writes those roads would refuse or reshape, on its own
# probe key, to find out what derouter does with them (docs/structure.md, "The probe's own road").
KEY_WRITES = {"create_sub_key", "update_sub_key", "delete_sub_key", "reclaim_budget"}
KEY_WRITERS = {("dashboard", "keywrites"), ("dashboard", "topups"), ("derouter", "probe"), ("derouter", "client")}


def _key_write_callers():
    """Every product module that names one of the client's key writes (called, passed on or imported)."""
    for parts, path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Attribute) and node.attr in KEY_WRITES) or (
                isinstance(node, ast.ImportFrom) and any(alias.name in KEY_WRITES for alias in node.names))
            if named:
                yield parts
                break


def test_key_writes_go_through_keywrites_and_topups_and_only_the_probe_beside_them():
    assert {parts for parts in _key_write_callers()} <= KEY_WRITERS
    assert ("derouter", "probe") in set(_key_write_callers())


WORKER_REGISTRY = """
import django
django.setup()
from django.utils.module_loading import autodiscover_modules
from huey.contrib.djhuey import HUEY
autodiscover_modules("tasks")
print("\\n".join(HUEY._registry._registry))
"""


def test_every_task_is_known_to_the_worker():
    """Tasks live beside their services: the worker loads each app's tasks module, and apps load the rest when ready.

    A fresh process, as the worker starts: in this one, the tests have imported every module already.
    """
    defined = set()
    for parts, path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                "task" in ast.unparse(decorator).split("(")[0] for decorator in node.decorator_list
            ):
                defined.add(f"{'.'.join(parts)}.{node.name}")
    worker = subprocess.run(
        [sys.executable, "-c", WORKER_REGISTRY],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "mirror.sync.sync_usage" in defined
    assert defined - set(worker.stdout.split()) == set()

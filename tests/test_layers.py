"""Imports run one way: from pages down to services, and from higher services to lower ones.

The layers, lowest first (the README's "Where things are" says what each holds):

    lib  <  derouter  <  accounts  <  mirror, exports, branding  <  dashboard  <  analytics, automation, ops  <  payments  <  portal

A *page* module (views, urls, admin, management commands: the entry
points a person or a command reaches) may import any service module. A *service* module may import only services of its
own package or of a lower layer, and only URL confs import another package's page modules. ``config`` (settings, root URLs, WSGI)
sits above everything. Packages on one layer do not import each other, so no cycle can hide
between them.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "lib": 0,
    "derouter": 1,
    "accounts": 2,
    "mirror": 3,
    "exports": 3,
    "branding": 3,
    "dashboard": 4,
    "analytics": 5,
    "automation": 5,
    "ops": 5,
    "payments": 6,
    "portal": 7,
}
PAGE_MODULE_NAMES = {"views", "urls", "admin", "apps"}


def _is_page(parts):
    """Entry points: views (or a views package), URL confs, admin, commands and Huey tasks."""
    if "management" in parts or "views" in parts:
        return True
    name = parts[-1]
    return name in PAGE_MODULE_NAMES or name.endswith(("_views", "_urls"))


def _is_url_conf(parts):
    """URL confs wire pages together, so they alone may import another package's views."""
    return parts[-1] == "urls" or parts[-1].endswith("_urls")


def _modules():
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            yield parts, path


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module.split(".")
            # "from dashboard import audit" imports the module dashboard.audit.
            for alias in node.names:
                yield base + [alias.name]


def _violations():
    for parts, path in _modules():
        package = parts[0]
        importer_is_page = _is_page(parts)
        for target in _imported_modules(path):
            target_package = target[0]
            if target_package not in LAYERS or target_package == package:
                continue
            if _is_page(tuple(target)) and not _is_url_conf(parts):
                yield f"{'/'.join(parts)} imports the page module {'.'.join(target)}"
            elif not importer_is_page and LAYERS[target_package] >= LAYERS[package]:
                yield f"{'/'.join(parts)} (layer {LAYERS[package]}) imports {'.'.join(target)} (layer {LAYERS[target_package]})"


def test_no_module_imports_upward_or_sideways():
    assert list(_violations()) == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("from dashboard import audit\nimport lib.money\n")
    assert [".".join(target) for target in _imported_modules(module)] == ["dashboard.audit", "lib.money"]
    assert _is_page(("dashboard", "views", "keys")) and _is_page(("portal", "urls"))
    assert not _is_page(("dashboard", "topups"))

"""The service's modules import one another one way: no circle, hidden or not."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import kdiag.service

SERVICE = Path(kdiag.service.__file__).parent


def _kdiag_imports(path: Path) -> set[str]:
    """Every ``kdiag.*`` module ``path`` imports, wherever the import statement is
    (``if TYPE_CHECKING:`` blocks and function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kdiag"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kdiag"))
    return found


def test_no_import_circle_in_the_service():
    modules = {f"kdiag.service.{p.stem}": p for p in SERVICE.glob("*.py") if p.stem != "__init__"}
    graph = {name: _kdiag_imports(path) & set(modules) for name, path in modules.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {exc.args[1]}") from None
    assert order.index("kdiag.service.context") < order.index("kdiag.service.ec2")


def test_the_use_case_layer_does_not_import_the_service():
    src = SERVICE.parent
    for module in ("authz.py", "filters.py", "interrupts.py", "errors.py"):
        assert not any(m.startswith("kdiag.service") for m in _kdiag_imports(src / module))

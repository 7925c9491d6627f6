"""The import graph of twm_tf: every module has a layer, and imports only its own layer or lower.

A new module gets a line in LAYERS; an import that goes upwards (infrastructure into the
algorithm, the algorithm into deployment, ...) or closes a cycle fails here with its name.
The layers are drawn in docs/architecture.md.
"""

import ast
import fnmatch
import os

from absl.testing import absltest

_ROOT = os.path.dirname(os.path.abspath(__file__))

# (layer, module patterns), lowest first; modules are dotted names below twm_tf.
LAYERS = (
    (0, ["errors", "games", "files", "faults", "config", "config_flags", "seeding", "precision"]),
    (0, ["optimizer", "schedule", "distribute"]),
    (1, ["ops", "ops.*", "replay", "replay.*", "envs", "envs.atari", "envs.env_state"]),
    (1, ["dev", "dev.flops"]),
    (2, ["models", "models.*", "dev.testdata"]),
    (3, ["world_model", "imagination", "acting"]),
    (4, ["learner"]),
    (5, ["run", "run.*", "evaluation", "evaluation.*", "deploy", "deploy.*"]),
    (5, ["analysis", "analysis.*"]),
    (6, ["envs.dream*", "trainer"]),
    (7, ["dev.testing"]),
)


def _modules() -> dict[str, str]:
    """Dotted module name (without the twm_tf prefix; '' for twm_tf) -> file, tests excluded."""
    modules = {}
    for directory, _, names in os.walk(_ROOT):
        for name in names:
            if name.endswith(".py") and not name.endswith("_test.py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, _ROOT)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix("__init__").rstrip(".")] = path
    return modules


def _imports(path: str, modules: dict[str, str]) -> set[str]:
    """The twm_tf modules `path` imports (a `from pkg import name` of a module counts as it)."""
    with open(path) as source:
        tree = ast.parse(source.read())
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("twm_tf"):
            base = node.module.removeprefix("twm_tf").lstrip(".")
            for alias in node.names:
                child = f"{base}.{alias.name}".lstrip(".")
                found.add(child if child in modules else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("twm_tf", "launch", "tools")):
                    found.add(alias.name.removeprefix("twm_tf").lstrip("."))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("launch", "tools")):
            found.add(node.module)
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (annotation-only imports)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def layer(module: str) -> int:
    ranks = {rank for rank, patterns in LAYERS for p in patterns if fnmatch.fnmatch(module, p)}
    if len(ranks) != 1:
        raise AssertionError(f"twm_tf.{module} needs exactly one layer in LAYERS, has {ranks}")
    return ranks.pop()


class LayersTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.modules = _modules()
        self.graph = {m: _imports(path, self.modules) for m, path in self.modules.items()}

    def test_every_module_has_one_layer(self):
        for module in self.modules:
            if module:
                layer(module)

    def test_no_import_goes_up(self):
        upward = [
            f"twm_tf.{m} (layer {layer(m)}) imports twm_tf.{d} (layer {layer(d)})"
            for m, deps in sorted(self.graph.items())
            if m
            for d in sorted(deps)
            if d in self.modules and d and layer(d) > layer(m)
        ]
        self.assertEmpty(upward)

    def test_the_library_imports_no_binary_or_tool(self):
        outside = [
            f"twm_tf.{m} imports {d}"
            for m, deps in self.graph.items()
            for d in deps
            if d.startswith(("launch", "tools"))
        ]
        self.assertEmpty(outside)

    def test_no_cycles(self):
        state, cycles = {}, []

        def visit(module, stack):
            state[module] = "open"
            for dep in sorted(self.graph.get(module, ())):
                if dep not in self.modules or not dep:
                    continue
                if state.get(dep) == "open":
                    cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
                elif dep not in state:
                    visit(dep, [*stack, dep])
            state[module] = "done"

        for module in sorted(self.modules):
            if module not in state:
                visit(module, [module])
        self.assertEmpty(cycles)

    def test_an_upward_import_is_caught(self):
        self.graph["ops.gumbel"] = {"trainer"}
        with self.assertRaises(AssertionError):
            self.test_no_import_goes_up()


if __name__ == "__main__":
    absltest.main()

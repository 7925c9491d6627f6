"""Repository rule pointing Bazel's Python toolchain at the workspace's .venv (made by setup.sh)."""

def _venv_python_impl(ctx):
    workspace = ctx.path(Label("@//:WORKSPACE")).dirname
    python = workspace.get_child(".venv").get_child("bin").get_child("python3")
    if not python.exists:
        fail("%s is missing: run ./setup.sh first" % python)
    ctx.file("WORKSPACE", "")
    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!/usr/bin/env python3",
)

py_runtime_pair(name = "runtime_pair", py3_runtime = ":runtime")

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

venv_python = repository_rule(implementation = _venv_python_impl, local = True)

"""Floating-point operations of a traced TensorFlow function, counted from its graph.

Only the ops that dominate TWM's cost are counted (matrix products and convolutions, forward and
backward), each as 2 x multiply-adds from its static shapes; element-wise ops are left out, so the
count is a slight underestimate. Benchmarks divide it by measured time to get achieved FLOP/s.
"""

import math
import re

import tensorflow as tf


def _shape(tensor) -> list[int]:
    dims = tensor.shape.as_list()
    if any(d is None for d in dims):
        raise ValueError(f"{tensor.name} has no static shape {dims}: trace with fixed shapes")
    return dims


def _conv_macs(out_backprop, kernel) -> int:
    """Multiply-adds of a 2-D convolution whose output (or output gradient) is `out_backprop`."""
    return math.prod(out_backprop) * math.prod(kernel[:3])


def _einsum(op) -> int:
    equation = op.get_attr("equation").decode()
    inputs = equation.split("->")[0].split(",")
    sizes = {}
    for term, tensor in zip(inputs, op.inputs):
        term = term.replace("...", "")
        for letter, dim in zip(term, _shape(tensor)[-len(term) :] if term else []):
            sizes[letter] = dim
    batch = 1
    if "..." in equation:  # Broadcast dims: those of the first input not named by letters.
        named = len(inputs[0].replace("...", ""))
        batch = math.prod(_shape(op.inputs[0])[: len(_shape(op.inputs[0])) - named])
    return batch * math.prod(sizes.values())


def _op_macs(op) -> int:
    kind = op.type
    if kind == "MatMul":
        a, b = _shape(op.inputs[0]), _shape(op.inputs[1])
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return m * k * n
    if kind in ("BatchMatMulV2", "BatchMatMulV3"):
        out = _shape(op.outputs[0])
        a = _shape(op.inputs[0])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return math.prod(out) * k
    if kind == "Einsum":
        return _einsum(op)
    if kind == "Conv2D":
        return _conv_macs(_shape(op.outputs[0]), _shape(op.inputs[1]))
    if kind == "Conv2DBackpropInput":  # Also the forward pass of a transposed convolution.
        return _conv_macs(_shape(op.inputs[2]), _shape(op.inputs[1]))
    if kind == "Conv2DBackpropFilter":
        return _conv_macs(_shape(op.inputs[2]), _shape(op.outputs[0]))
    return 0


_CALLS = re.compile(r"(Stateful)?PartitionedCall")


def count(function: tf.types.experimental.ConcreteFunction) -> int:
    """FLOPs of one call of a concrete function (nested function calls included, loops not).

    Raises:
        ValueError: if a counted op has a dynamic shape, or the graph has a while loop, whose
            trip count the graph does not tell.
    """

    def graph_macs(graph, library: dict) -> int:
        # A function called from a nested graph (e.g. inside a gradient) is defined there.
        library = {**library, **graph._functions}  # noqa: SLF001  (name -> function)
        total = 0
        for op in graph.get_operations():
            if op.type in ("While", "StatelessWhile"):
                raise ValueError("cannot count FLOPs through a while loop")
            if _CALLS.fullmatch(op.type):
                total += graph_macs(library[op.get_attr("f").name].graph, library)
            else:
                total += _op_macs(op)
        return total

    return 2 * graph_macs(function.graph, {})

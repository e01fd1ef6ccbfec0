#!/usr/bin/env python3
"""Writes the small ONNX files the error tests load.

Requires the `onnx` package (`pip install onnx`). Run from any directory; the files are
written next to this script.

- unsupported-op.onnx: one node of the made-up operator `NoSuchOp`, named `mystery`, with a
  float32 input `x` of shape [1, 4]. No backend implements it.
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper

here = Path(__file__).resolve().parent

node = helper.make_node("NoSuchOp", ["x"], ["y"], name="mystery")
graph = helper.make_graph(
    [node],
    "unsupported",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, here / "unsupported-op.onnx")

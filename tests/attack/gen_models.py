"""Bad models: ONNX graphs with hostile attributes, inputs, dims and shapes; ncnn graphs that starve layers.

Graphs are built in the case's child (``prepare``) with ``onnx.helper``, without the checker, so
invalid ones reach edgekit as a user's file would. Valid-but-unusual graphs (an in-place op on the
input, odd dims) must convert; the rest must be refused with one line, before native code sees them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tests.attack.case import Case

CONVERT = ["convert", "gen.onnx", "-o", "out", "--preset", "none", "--no-fp16", "--verify-num", "1"]
INPLACE = [
    "Relu",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "HardSigmoid",
    "HardSwish",
    "Abs",
    "Neg",
    "Clip",
    "Elu",
    "Softplus",
    "Exp",
]


def _write(spec: dict[str, Any], ws: Path) -> None:
    """Build the graph ``spec`` describes into ``ws/user/gen.onnx`` (runs in the case's child)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(spec.get("seed", 0))
    shape = spec.get("shape", [1, 3, 32, 32])
    dtype = getattr(TensorProto, spec.get("dtype", "FLOAT"))
    inputs = [helper.make_tensor_value_info("images", dtype, shape)]
    inits = []

    def const(array: Any, name: str) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    nodes = []
    x = "images"
    if spec.get("first"):
        op = spec["first"]
        ins = [x]
        if op == "Clip":
            ins += [const(np.float32(0), "lo"), const(np.float32(6), "hi")]
        nodes.append(helper.make_node(op, ins, ["first"], name="first_op"))
        x = "first"
    cin = shape[1] if len(shape) > 1 and isinstance(shape[1], int) and 0 < shape[1] < 64 else 3
    w = const(rng.normal(0, 0.3, (8, cin, 3, 3)).astype(np.float32), "w")
    b = const(np.zeros(8, np.float32), "b")
    conv_attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
    conv_attrs.update(spec.get("conv", {}))
    conv_inputs = spec.get("conv_inputs", [x, w, b])
    nodes.append(
        helper.make_node("Conv", [i.replace("X", x) for i in conv_inputs], ["c"], name="conv", **conv_attrs)
    )
    y = "c"
    if spec.get("op"):
        op, ins, attrs, _extra = spec["op"]
        names = [
            y if i == "Y" else const(np.asarray(v[0], dtype=v[1]), f"k{n}") for n, (i, v) in enumerate(ins)
        ]
        nodes.append(helper.make_node(op, names, ["o"], name="attacked", **attrs))
        y = "o"
    out_name = spec.get("output", y)
    outputs = [_output(nodes, inputs, inits, out_name)] if spec.get("outputs", True) else []
    if spec.get("cycle"):
        nodes.append(helper.make_node("Relu", ["o2"], ["images2"], name="cyc"))
        nodes[0].input[0] = "images2"
        nodes.append(helper.make_node("Relu", [y], ["o2"], name="cyc2"))
    if spec.get("duplicate"):
        nodes.append(helper.make_node("Relu", ["images"], [y], name="dup"))
    graph = helper.make_graph(nodes, "attack", inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(spec.get("domain", ""), spec.get("opset", 14))]
    )
    model.ir_version = spec.get("ir", 8)
    if spec.get("external"):
        tensor = model.graph.initializer[-1]
        tensor.ClearField("float_data")
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", spec["external"]
    data = model.SerializeToString()
    if spec.get("truncate"):
        data = data[: int(len(data) * spec["truncate"])]
    (ws / "user" / "gen.onnx").write_bytes(data)


def _output(nodes: list[Any], inputs: list[Any], inits: list[Any], name: str) -> Any:
    """The output's value info: inferred by ONNX when it can, else a symbolic 4-D float tensor."""
    from onnx import TensorProto, helper, shape_inference

    probe = helper.make_model(helper.make_graph(nodes, "probe", inputs, [], inits))
    try:
        inferred = shape_inference.infer_shapes(probe)
        for info in inferred.graph.value_info:
            if info.name == name and info.type.tensor_type.HasField("shape"):
                return info
    except Exception:
        pass
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", "c", "h", "w"])


def _raw(content: bytes, ws: Path) -> None:
    (ws / "user" / "gen.onnx").write_bytes(content)


ATTRS: list[tuple[str, dict[str, Any]]] = [
    ("conv strides 0", {"conv": {"strides": [0, 0]}}),
    ("conv strides 0,1", {"conv": {"strides": [0, 1]}}),
    ("conv strides -1", {"conv": {"strides": [-1, -1]}}),
    ("conv dilations 0", {"conv": {"dilations": [0, 0]}}),
    ("conv pads -1", {"conv": {"pads": [-1, -1, -1, -1]}}),
    ("conv pads huge", {"conv": {"pads": [100000, 100000, 100000, 100000]}}),
    ("conv kernel mismatch", {"conv": {"kernel_shape": [5, 5]}}),
    ("conv kernel 0", {"conv": {"kernel_shape": [0, 0]}}),
    ("conv group 0", {"conv": {"group": 0}}),
    ("conv group 5", {"conv": {"group": 5}}),
    ("conv group -1", {"conv": {"group": -1}}),
    ("conv strides huge", {"conv": {"strides": [2**31 - 1, 2**31 - 1]}}),
    ("conv auto_pad bogus", {"conv": {"auto_pad": "BOGUS", "pads": [0, 0, 0, 0]}}),
    ("conv 1 input", {"conv_inputs": ["X"]}),
    ("conv 4 inputs", {"conv_inputs": ["X", "w", "b", "b"]}),
    ("conv missing weight", {"conv_inputs": ["X", "", "b"]}),
    ("conv unknown input", {"conv_inputs": ["X", "nowhere", "b"]}),
]
POOLS = [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [0, 0]}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [0, 0]}),
    ("MaxPool", {"kernel_shape": [0, 0]}),
    ("MaxPool", {"kernel_shape": [100, 100]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [5, 5, 5, 5]}),
    ("MaxPool", {"kernel_shape": [2, 2], "ceil_mode": 2}),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [-2, -2]}),
    ("AveragePool", {"kernel_shape": [2, 2], "dilations": [0, 0]}),
    ("LpPool", {"kernel_shape": [2, 2], "p": 0}),
]
OPS: list[tuple[str, tuple]] = [
    (
        "Resize scales 0",
        (
            "Resize",
            [("Y", None), ("c", ([], "float32")), ("c", ([1, 1, 0, 0], "float32"))],
            {"mode": "nearest"},
            None,
        ),
    ),
    (
        "Resize scales huge",
        (
            "Resize",
            [("Y", None), ("c", ([], "float32")), ("c", ([1, 1, 1e5, 1e5], "float32"))],
            {"mode": "nearest"},
            None,
        ),
    ),
    (
        "Resize scales nan",
        (
            "Resize",
            [("Y", None), ("c", ([], "float32")), ("c", ([1, 1, float("nan"), 2], "float32"))],
            {"mode": "linear"},
            None,
        ),
    ),
    ("Resize 1 input", ("Resize", [("Y", None)], {}, None)),
    ("Reshape -1,-1", ("Reshape", [("Y", None), ("c", ([-1, -1], "int64"))], {}, None)),
    ("Reshape zeros", ("Reshape", [("Y", None), ("c", ([0, 0, 0, 0, 0], "int64"))], {}, None)),
    ("Reshape wrong size", ("Reshape", [("Y", None), ("c", ([1, 7, 13], "int64"))], {}, None)),
    ("Transpose bad perm", ("Transpose", [("Y", None)], {"perm": [0, 0, 1, 2]}, None)),
    ("Transpose perm 9", ("Transpose", [("Y", None)], {"perm": [9, 1, 2, 3]}, None)),
    ("Concat axis 7", ("Concat", [("Y", None), ("Y", None)], {"axis": 7}, None)),
    ("Concat 0 inputs", ("Concat", [], {"axis": 1}, None)),
    ("Softmax axis 9", ("Softmax", [("Y", None)], {"axis": 9}, None)),
    (
        "Slice steps 0",
        (
            "Slice",
            [
                ("Y", None),
                ("c", ([0], "int64")),
                ("c", ([4], "int64")),
                ("c", ([1], "int64")),
                ("c", ([0], "int64")),
            ],
            {},
            None,
        ),
    ),
    ("Gather index 100", ("Gather", [("Y", None), ("c", ([100], "int64"))], {"axis": 1}, None)),
    ("Split zeros", ("Split", [("Y", None), ("c", ([0, 0], "int64"))], {"axis": 1}, None)),
    ("Flatten axis 10", ("Flatten", [("Y", None)], {"axis": 10}, None)),
    (
        "Pad huge",
        ("Pad", [("Y", None), ("c", ([0, 0, 50000, 50000, 0, 0, 50000, 50000], "int64"))], {}, None),
    ),
    ("Pad negative", ("Pad", [("Y", None), ("c", ([0, 0, -40, -40, 0, 0, -40, -40], "int64"))], {}, None)),
    ("Add 1 input", ("Add", [("Y", None)], {}, None)),
    ("Add 3 inputs", ("Add", [("Y", None), ("Y", None), ("Y", None)], {}, None)),
    ("MatMul 1 input", ("MatMul", [("Y", None)], {}, None)),
    ("Gemm 1 input", ("Gemm", [("Y", None)], {}, None)),
    ("BatchNorm 2 inputs", ("BatchNormalization", [("Y", None), ("c", ([1.0] * 8, "float32"))], {}, None)),
    ("Clip min>max", ("Clip", [("Y", None), ("c", (5.0, "float32")), ("c", (-5.0, "float32"))], {}, None)),
    (
        "Clip 4 inputs",
        (
            "Clip",
            [("Y", None), ("c", (0.0, "float32")), ("c", (6.0, "float32")), ("c", (1.0, "float32"))],
            {},
            None,
        ),
    ),
    (
        "ConvTranspose bad output_padding",
        (
            "ConvTranspose",
            [("Y", None), ("c", (__import__("numpy").ones((8, 4, 3, 3)), "float32"))],
            {"strides": [1, 1], "output_padding": [5, 5]},
            None,
        ),
    ),
    ("Unknown op", ("FooBarOp", [("Y", None)], {}, None)),
    (
        "Upsample huge",
        ("Upsample", [("Y", None), ("c", ([1, 1, 10000, 10000], "float32"))], {"mode": "nearest"}, None),
    ),
    ("TopK k huge", ("TopK", [("Y", None), ("c", ([2**40], "int64"))], {"axis": 1}, None)),
    ("Expand huge", ("Expand", [("Y", None), ("c", ([1, 8, 100000, 100000], "int64"))], {}, None)),
    ("LayerNorm 1 input", ("LayerNormalization", [("Y", None)], {"axis": -1}, None)),
    ("Attention 1 input", ("Attention", [("Y", None)], {}, None)),
]
DIMS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("dynamic NCHW", {"shape": ["N", 3, "H", "W"]}, []),
    ("dynamic NCHW + --input-shape", {"shape": ["N", 3, "H", "W"]}, ["--input-shape", "1,3,32,32"]),
    ("dynamic + huge --input-shape", {"shape": ["N", 3, "H", "W"]}, ["--input-shape", "1,3,60000,60000"]),
    ("dynamic + odd --input-shape", {"shape": ["N", 3, "H", "W"]}, ["--input-shape", "1,3,33,17"]),
    ("dims 0", {"shape": [1, 3, 0, 0]}, []),
    ("dims -1", {"shape": [1, 3, -1, 32]}, []),
    ("rank 3", {"shape": [3, 32, 32]}, []),
    ("rank 5", {"shape": [1, 3, 32, 32, 1]}, []),
    ("rank 0", {"shape": []}, []),
    ("1x1 input", {"shape": [1, 3, 1, 1]}, []),
    ("odd 33x17", {"shape": [1, 3, 33, 17]}, []),
    ("batch 4", {"shape": [4, 3, 32, 32]}, []),
    ("channels mismatch", {"shape": [1, 1, 32, 32], "conv_inputs": ["X", "w", "b"]}, []),
    ("huge 100000^2", {"shape": [1, 3, 100000, 100000]}, []),
    ("huge 65536^2", {"shape": [1, 3, 65536, 65536]}, []),
    ("huge 2^31", {"shape": [1, 3, 2**31, 2**31]}, []),
    ("huge int64", {"shape": [1, 3, 2**62, 2**62]}, []),
    ("partly dynamic H", {"shape": [1, 3, "H", 32]}, []),
    ("fp16 input", {"dtype": "FLOAT16"}, []),
    ("int8 input", {"dtype": "INT8"}, []),
    ("string input", {"dtype": "STRING"}, []),
    ("bool input", {"dtype": "BOOL"}, []),
]
GRAPHS: list[tuple[str, dict[str, Any]]] = [
    ("no outputs", {"outputs": False}),
    ("output never produced", {"output": "ghost"}),
    ("cycle", {"cycle": True}),
    ("duplicate output names", {"duplicate": True}),
    ("custom domain", {"domain": "com.attack"}),
    ("opset 1 (Conv exists there)", {"opset": 1, "expect": "any"}),
    ("opset 99", {"opset": 99}),
    ("ir_version 99", {"ir": 99}),
    ("ir_version 1", {"ir": 1}),
    ("external data traversal", {"external": "../notes.txt"}),
    ("external data absolute", {"external": "/proc/self/status"}),
    ("external data missing", {"external": "missing.bin"}),
    ("truncated 50%", {"truncate": 0.5}),
    ("truncated 95%", {"truncate": 0.95}),
]
RAW = [
    ("empty file", b""),
    ("garbage", bytes(random.Random(5).randrange(256) for _ in range(4096))),
    ("json", b'{"graph": {}}'),
    ("zeros", bytes(100000)),
    ("protobuf varint bomb", b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 16),
]


def onnx_cases(rng: random.Random) -> list[Case]:
    """Every hostile ONNX (in-place first ops, attributes, ops, dims, graphs, raw bytes) through convert."""
    cases: list[Case] = []

    def add(
        name: str, prepare: Callable[[Path], None], extra: list[str] | None = None, expect: str = "any"
    ) -> None:
        cases.append(
            Case(
                "onnx",
                name,
                CONVERT + (extra or []),
                prepare=prepare,
                expect=expect,
                timeout=120,
                expensive=True,
            )
        )

    for op in INPLACE:
        add(f"in-place first op {op}", partial(_write, {"first": op}))
    for name, spec in ATTRS:
        add(name, partial(_write, spec), expect="error")
    for op, attrs in POOLS:
        add(f"{op} {attrs}", partial(_write, {"op": (op, [("Y", None)], attrs, None)}), expect="error")
    for name, op in OPS:
        add(name, partial(_write, {"op": op}))
    for name, spec, extra in DIMS:
        add(name, partial(_write, spec), extra)
    for name, spec in GRAPHS:
        add(name, partial(_write, spec), expect=spec.get("expect", "error"))
    for name, content in RAW:
        add(name, partial(_raw, content), expect="error")
    return cases


NCNN_HEAD = "7767517\n{layers} {blobs}\nInput in0 0 1 in0 0=32 1=32 2=3\n"
#: (name, layer lines after the Input, layer count, blob count)
STARVED = [
    ("in-place ReLU on input", "ReLU relu 1 1 in0 out0\n", 2, 2),
    ("in-place Clip on input", "Clip clip 1 1 in0 out0 0=0.0 1=6.0\n", 2, 2),
    ("in-place Sigmoid on input", "Sigmoid sig 1 1 in0 out0\n", 2, 2),
    ("Eltwise 1 input", "Eltwise e 1 1 in0 out0 0=1\n", 2, 2),
    ("Eltwise 0 inputs", "Eltwise e 0 1 out0 0=1\n", 2, 2),
    ("Noop 0 inputs", "Noop n 0 1 out0\n", 2, 2),
    ("BinaryOp 1 input", "BinaryOp b 1 1 in0 out0 0=0\n", 2, 2),
    ("Concat 0 inputs", "Concat c 0 1 out0 0=0\n", 2, 2),
    ("MatMul 1 input", "MatMul m 1 1 in0 out0\n", 2, 2),
    ("MultiHeadAttention 1 input", "MultiHeadAttention a 1 1 in0 out0 0=32 1=4 2=1024\n", 2, 2),
    ("SDPA 1 input", "SDPA s 1 1 in0 out0\n", 2, 2),
    ("RotaryEmbed 1 input", "RotaryEmbed r 1 1 in0 out0\n", 2, 2),
    ("DeformableConv2D 1 input", "DeformableConv2D d 1 1 in0 out0 0=8 1=3 6=216\n", 2, 2),
    ("dynamic-weight depthwise 1 input", "ConvolutionDepthWise c 1 1 in0 out0 0=3 1=3 7=3 19=1\n", 2, 2),
    ("dynamic-weight conv 1 input", "Convolution c 1 1 in0 out0 0=8 1=3 19=1\n", 2, 2),
    ("Crop 0 inputs", "Crop c 0 1 out0\n", 2, 2),
    ("Gemm 1 input", "Gemm g 1 1 in0 out0\n", 2, 2),
    ("Convolution no weights", "Convolution c 1 1 in0 out0 0=8 1=3 6=216\n", 2, 2),
    ("Convolution weight count lie", "Convolution c 1 1 in0 out0 0=8 1=3 6=2000000000\n", 2, 2),
    ("Reshape to huge", "Reshape r 1 1 in0 out0 0=100000 1=100000 2=100000\n", 2, 2),
    ("Interp huge scale", "Interp i 1 1 in0 out0 0=1 1=10000.0 2=10000.0\n", 2, 2),
    ("blob used twice as output", "ReLU r1 1 1 in0 out0\nReLU r2 1 1 in0 out0\n", 3, 2),
    ("undefined bottom", "ReLU r 1 1 ghost out0\n", 2, 2),
    ("layer count lies", "ReLU r 1 1 in0 out0\n", 9, 2),
    ("negative counts", "ReLU r 1 1 in0 out0\n", -1, -1),
]


def _param(text: str, ws: Path) -> None:
    (ws / "user" / "m.param").write_text(text)
    (ws / "user" / "m.bin").write_bytes(b"\0" * 64)


def ncnn_cases(rng: random.Random) -> list[Case]:
    """Starved and in-place ncnn graphs through detect, bench and eval as bare .param files."""
    cases = []
    for name, lines, layers, blobs in STARVED:
        text = NCNN_HEAD.format(layers=layers, blobs=blobs) + lines
        for argv in (
            ["detect", "m.param", "images/a.jpg", "--preset", "nanodet-plus", "--size", "32", "-o", "out"],
            ["bench", "m.param", "--shape", "3,32,32", "--loops", "1", "--warmup", "0", "--threads", "1"],
            [
                "eval",
                "m.param",
                "--preset",
                "nanodet-plus",
                "--size",
                "32",
                "--coco",
                "{coco}",
                "--images",
                "{coco_images}",
                "--limit",
                "1",
            ],
        ):
            cases.append(Case("ncnn", f"{argv[0]}: {name}", argv, prepare=partial(_param, text), timeout=60))
    return cases

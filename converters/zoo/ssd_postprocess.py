"""The post-processing tail of the downloadable SSD-ResNet34 ONNX, written as ONNX nodes.

From the raw ``loc`` (1x4xN) and ``conf`` (1x81xN): decode against the default boxes (held as
constants), softmax over classes, per class the best ``candidates_per_class`` (TopK), greedy
NonMaxSuppression per class (classes as NMS batches, IoU 0.5, score > 0.05), then the best
``max_detections`` overall (TopK). Outputs as in the MLPerf file: ``bboxes`` 1xKx4 (xmin, ymin,
xmax, ymax, normalised), ``labels`` 1xK (int64, 1..80, 0 is background) and ``scores`` 1xK.

ncnn cannot run this tail (NonMaxSuppression, TopK, data-dependent shapes): convert cuts it off
and the ``ssd`` decoder family replaces it; the tests run both on the same raw outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.zoo.graph import Net, float_info
from edge.decoders.ssd import SsdConfig, default_boxes

OUTPUTS = ("bboxes", "labels", "scores")


def _c(net: Net, name: str, array: np.ndarray) -> str:
    return net.const(f"post.{name}", array)


def write_tail(
    net: Net,
    loc: str,
    conf: str,
    config: SsdConfig,
    *,
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
    max_detections: int = 200,
) -> tuple[str, str, str]:
    """Append the tail to ``net``; returns the ``bboxes``, ``labels`` and ``scores`` tensors."""
    priors = default_boxes(config)
    n = len(priors)
    var_xy, var_wh = config.variances
    k = min(config.candidates_per_class, n)

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        return net.node(op, inputs, [f"post.{out}"], f"post.{op}.{out}", **attrs)[0]

    offsets = node("Transpose", [loc], "offsets", perm=[0, 2, 1])  # 1 x N x 4
    starts, ends, axis = (
        _c(net, "xy_start", np.array([0], np.int64)),
        _c(net, "xy_end", np.array([2], np.int64)),
        _c(net, "axis2", np.array([2], np.int64)),
    )
    wh_end = _c(net, "wh_end", np.array([4], np.int64))
    d_xy = node("Slice", [offsets, starts, ends, axis], "d_xy")
    d_wh = node("Slice", [offsets, ends, wh_end, axis], "d_wh")
    prior_xy = _c(net, "prior_xy", priors[None, :, :2].copy())
    prior_wh = _c(net, "prior_wh", priors[None, :, 2:].copy())
    scaled = node("Mul", [d_xy, _c(net, "var_xy", np.array(var_xy, np.float32))], "scaled_xy")
    centre = node("Add", [node("Mul", [scaled, prior_wh], "shift_xy"), prior_xy], "centre")
    grown = node(
        "Exp", [node("Mul", [d_wh, _c(net, "var_wh", np.array(var_wh, np.float32))], "scaled_wh")], "exp_wh"
    )
    size = node("Mul", [grown, prior_wh], "size")
    half = node("Mul", [size, _c(net, "half", np.array(0.5, np.float32))], "half_size")
    corners = node(
        "Concat",
        [node("Sub", [centre, half], "top_left"), node("Add", [centre, half], "bottom_right")],
        "boxes",
        axis=2,
    )  # 1 x N x 4
    probs = node("Softmax", [conf], "probs", axis=1)  # 1 x 81 x N
    first, big, axis1 = (
        _c(net, "one", np.array([1], np.int64)),
        _c(net, "big", np.array([1 << 30], np.int64)),
        _c(net, "axis1", np.array([1], np.int64)),
    )
    foreground = node("Slice", [probs, first, big, axis1], "foreground")  # 1 x 80 x N
    cand_scores, cand_index = net.node(
        "TopK",
        [foreground, _c(net, "k_class", np.array([k], np.int64))],
        ["post.cand_scores", "post.cand_index"],
        "post.TopK.candidates",
        axis=2,
    )  # 1 x 80 x k
    zero = _c(net, "zero", np.array([0], np.int64))
    class_scores = node("Squeeze", [cand_scores, zero], "class_scores")  # 80 x k
    flat_boxes = node("Squeeze", [corners, zero], "flat_boxes")  # N x 4
    class_boxes = node(
        "Gather", [flat_boxes, node("Squeeze", [cand_index, zero], "class_index")], "class_boxes", axis=0
    )
    selected = node(
        "NonMaxSuppression",
        [
            class_boxes,  # 80 x k x 4: one NMS batch per class
            node("Unsqueeze", [class_scores, _c(net, "one_axis", np.array([1], np.int64))], "nms_scores"),
            _c(net, "max_per_class", np.array([k], np.int64)),
            _c(net, "iou", np.array([nms_threshold], np.float32)),
            _c(net, "score", np.array([score_threshold], np.float32)),
        ],
        "selected",
    )  # M x 3: class, 0, candidate
    pick = node("Gather", [selected, _c(net, "pick_cols", np.array([0, 2], np.int64))], "pick", axis=1)
    kept_scores = node("GatherND", [class_scores, pick], "kept_scores")  # M
    kept_boxes = node("GatherND", [class_boxes, pick], "kept_boxes")  # M x 4
    kept_class = node("Gather", [selected, zero], "kept_class_col", axis=1)  # M x 1
    count = node("Shape", [kept_scores], "count")
    top = node("Min", [count, _c(net, "max_det", np.array([max_detections], np.int64))], "top")
    best_scores, best = net.node(
        "TopK", [kept_scores, top], ["post.best_scores", "post.best"], "post.TopK.best", axis=0
    )
    boxes = node("Gather", [kept_boxes, best], "best_boxes", axis=0)
    best_class = node("Gather", [kept_class, best], "best_class", axis=0)  # K x 1
    flat_class = node("Squeeze", [best_class, _c(net, "one_b", np.array([1], np.int64))], "best_class_flat")
    labels = node("Add", [flat_class, _c(net, "label_shift", np.array(1, np.int64))], "best_labels")
    return (
        net.node("Unsqueeze", [boxes, zero], [OUTPUTS[0]], "post.bboxes")[0],
        net.node("Unsqueeze", [labels, zero], [OUTPUTS[1]], "post.labels")[0],
        net.node("Unsqueeze", [best_scores, zero], [OUTPUTS[2]], "post.scores")[0],
    )


def output_infos() -> list[onnx.ValueInfoProto]:
    """Graph outputs of the tail: boxes, labels and scores with a dynamic detection count."""
    return [
        float_info(OUTPUTS[0], [1, "detections", 4]),
        helper.make_tensor_value_info(OUTPUTS[1], TensorProto.INT64, [1, "detections"]),
        float_info(OUTPUTS[2], [1, "detections"]),
    ]


def append_tail(model: onnx.ModelProto, config: SsdConfig) -> None:
    """Replace ``model``'s ``loc``/``conf`` outputs by the tail's ``bboxes``, ``labels``, ``scores``."""
    net = Net(np.random.default_rng(0))
    write_tail(net, "loc", "conf", config)
    model.graph.node.extend(net.nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in net.inits.items())
    del model.graph.output[:]
    model.graph.output.extend(output_infos())


def tail_model(config: SsdConfig, num_classes: int = 81) -> onnx.ModelProto:
    """The tail alone, inputs ``loc`` 1x4xN and ``conf`` 1xCxN (for checking decoders)."""
    net = Net(np.random.default_rng(0))
    n = len(default_boxes(config))
    write_tail(net, "loc", "conf", config)
    inputs = [float_info("loc", [1, 4, n]), float_info("conf", [1, num_classes, n])]
    return net.model(inputs, output_infos(), "ssd_postprocess")

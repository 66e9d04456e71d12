"""SSD-ResNet34 1200x1200 (MLPerf inference reference), written as ONNX from numpy.

The network follows the project's ssd-resnet34 notes layer for layer: ResNet-34's stem and
layers 1-3 (layer3 at stride 1), five extra blocks (1x1 conv then 3x3, bias + ReLU, no BN),
and on each of the six sources a 3x3 stride-3 ``loc`` and ``conf`` head reshaped to
``(1, 4, -1)`` / ``(1, 81, -1)`` and concatenated: raw outputs ``loc`` 1x4x15130 and ``conf``
1x81x15130 (node names ``Concat_470`` / ``Concat_471`` as in the MLPerf file).

Generated weights are seeded: He-normal convolutions, and BatchNorm running statistics measured
on a smooth random batch flowing through the backbone as it is written (see ``graph.py``), so
the backbone's activations stay near unit scale; heads are scaled to logits of std ~1.5. Other
square input sizes (>= 400) give the same network with smaller maps, for fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from converters.zoo.graph import Net, float_info
from edge.decoders.ssd import resnet34_feature_sizes
from edge.errors import EdgekitError

NAME = "ssd-resnet34-1200"
FULL_SIZE = 1200
NUM_CLASSES = 81  # background + COCO's 80
BOXES_PER_LOCATION = (4, 6, 6, 6, 4, 4)
SOURCE_CHANNELS = (256, 512, 512, 256, 256, 256)
# extra blocks: 1x1 conv channels, 3x3 conv channels, 3x3 stride, 3x3 pad
EXTRAS = ((256, 512, 2, 1), (256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 2, 0), (128, 256, 1, 0))
LAYERS = ((64, 3, 1), (128, 4, 2), (256, 6, 1))  # ResNet-34 layers 1-3: channels, blocks, stride
INPUT_NAME = "image"
CALIBRATION_SIZE = 96  # backbone BatchNorm statistics are measured at this input size
CALIBRATION_BATCH = 4
LOC_STD, CONF_STD = 1.0, 1.5  # target std of the generated heads' outputs


@dataclass(frozen=True)
class Built:
    """A written network: the model, its input size and the seed of its generated weights."""

    model: onnx.ModelProto
    input_size: int
    seed: int


def calibration_batch(rng: np.random.Generator) -> np.ndarray:
    """Smooth random "images" (already normalised, ~unit variance) for BatchNorm statistics."""
    coarse = rng.normal(0.0, 1.0, (CALIBRATION_BATCH, 3, CALIBRATION_SIZE // 8, CALIBRATION_SIZE // 8))
    smooth = np.kron(coarse, np.ones((1, 1, 8, 8)))
    fine = rng.normal(0.0, 0.3, smooth.shape)
    return (smooth + fine).astype(np.float32)


def _basic_block(net: Net, x: str, name: str, cin: int, cout: int, stride: int) -> str:
    y = net.conv(x, f"{name}.conv1", cin, cout, 3, stride, 1, bias=False, gain=2.0)
    y = net.relu(net.bn(y, f"{name}.bn1", cout), f"{name}.relu1")
    y = net.conv(y, f"{name}.conv2", cout, cout, 3, 1, 1, bias=False, gain=2.0)
    y = net.bn(y, f"{name}.bn2", cout)
    if stride != 1 or cin != cout:  # ResNet's 1x1 downsample (layer3's keeps stride 1)
        x = net.conv(x, f"{name}.downsample.0", cin, cout, 1, stride, 0, bias=False, gain=2.0)
        x = net.bn(x, f"{name}.downsample.1", cout)
    return net.relu(net.add(y, x, f"{name}.add"), f"{name}.relu2")


def _backbone(net: Net, x: str) -> str:
    y = net.conv(x, "backbone.conv1", 3, 64, 7, 2, 3, bias=False, gain=2.0)
    y = net.relu(net.bn(y, "backbone.bn1", 64), "backbone.relu")
    y = net.maxpool(y, "backbone.maxpool", 3, 2, 1)
    cin = 64
    for index, (channels, blocks, stride) in enumerate(LAYERS, start=1):
        for b in range(blocks):
            y = _basic_block(net, y, f"backbone.layer{index}.{b}", cin, channels, stride if b == 0 else 1)
            cin = channels
    return y


def _heads(net: Net, sources: list[str], second_moment: float) -> tuple[str, str]:
    locs, confs = [], []
    for level, (src, cin, nd) in enumerate(zip(sources, SOURCE_CHANNELS, BOXES_PER_LOCATION, strict=True)):
        for kind, per_box, std, parts in (("loc", 4, LOC_STD, locs), ("conf", NUM_CLASSES, CONF_STD, confs)):
            name = f"{kind}.{level}"
            gain = std * std / second_moment
            y = net.conv(src, name, cin, nd * per_box, 3, 3, 1, bias=True, gain=gain)
            shape = net.const(f"{name}.shape", np.array([1, per_box, -1], np.int64))
            parts.append(net.node("Reshape", [y, shape], [f"{name}.flat"], f"Reshape_{name}")[0])
    loc = net.node("Concat", locs, ["loc"], "Concat_470", axis=2)[0]
    conf = net.node("Concat", confs, ["conf"], "Concat_471", axis=2)[0]
    return loc, conf


def build_network(input_size: int = FULL_SIZE, seed: int = 0) -> Built:
    """The raw network (outputs ``loc`` and ``conf``) at a square ``input_size``, seeded weights."""
    sizes = resnet34_feature_sizes(input_size)
    if sizes is None:
        raise EdgekitError(f"SSD-ResNet34 needs an input of at least 400 pixels, got {input_size}")
    rng = np.random.default_rng(seed)
    net = Net(rng)
    net.values[INPUT_NAME] = calibration_batch(rng)
    source0 = _backbone(net, INPUT_NAME)
    second_moment = float(np.mean(net.values[source0] ** 2))
    net.values.clear()  # extras and heads: He scaling keeps the second moment, no BN to calibrate
    sources, x, cin = [source0], source0, SOURCE_CHANNELS[0]
    for i, (mid, cout, stride, pad) in enumerate(EXTRAS, start=1):
        y = net.relu(net.conv(x, f"extra{i}.0", cin, mid, 1, 1, 0, bias=True, gain=2.0), f"extra{i}.relu0")
        x = net.relu(
            net.conv(y, f"extra{i}.1", mid, cout, 3, stride, pad, bias=True, gain=2.0), f"extra{i}.relu1"
        )
        sources.append(x)
        cin = cout
    loc, conf = _heads(net, sources, second_moment)
    boxes = sum(nd * f * f for nd, f in zip(BOXES_PER_LOCATION, sizes, strict=True))
    model = net.model(
        [float_info(INPUT_NAME, [1, 3, input_size, input_size])],
        [float_info(loc, [1, 4, boxes]), float_info(conf, [1, NUM_CLASSES, boxes])],
        "ssd_resnet34",
    )
    return Built(model, input_size, seed)

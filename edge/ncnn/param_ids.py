"""Named ncnn param ids (the ``k`` of ``k=v`` in a .param line), one class per layer type.

From ncnn's operator reference (docs/developer-guide/operators.md) and each layer's
``load_param``. Only the types edgekit reads or writes are listed; the ids are plain ints so
they work directly as keys of :attr:`edge.ncnn.model.Layer.params`.
"""

from __future__ import annotations


class AnyLayer:
    """Ids ncnn's ``Net::load_param`` reads for every layer type."""

    SHAPE_HINTS = 30  # array: count of dims then w, h, c (``-23330=4,3,w,h,c``)
    FEATURE_MASK = 31


class Input:
    W = 0
    H = 1
    C = 2
    D = 11


class _ConvolutionBase:
    """Ids shared by every (de)convolution type."""

    NUM_OUTPUT = 0
    KERNEL_W = 1
    DILATION_W = 2
    STRIDE_W = 3
    PAD_LEFT = 4
    BIAS_TERM = 5
    WEIGHT_DATA_SIZE = 6
    ACTIVATION_TYPE = 9
    ACTIVATION_PARAMS = 10
    KERNEL_H = 11
    DILATION_H = 12
    STRIDE_H = 13
    PAD_TOP = 14
    PAD_RIGHT = 15
    PAD_BOTTOM = 16


class Convolution(_ConvolutionBase):
    """Also Convolution1D (which has no h / top / bottom ids)."""

    INT8_SCALE_TERM = 8  # 0 float; 2 (1 for depthwise) int8; +100 requantized int8 output
    PAD_VALUE = 18
    DYNAMIC_WEIGHT = 19


class ConvolutionDepthWise(Convolution):
    """Also ConvolutionDepthWise1D."""

    GROUP = 7


class Convolution3D(_ConvolutionBase):
    """Also ConvolutionDepthWise3D (which adds :attr:`ConvolutionDepthWise.GROUP`)."""

    PAD_BEHIND = 17
    PAD_VALUE = 18
    KERNEL_D = 21
    DILATION_D = 22
    STRIDE_D = 23
    PAD_FRONT = 24


class Deconvolution(_ConvolutionBase):
    """Also Deconvolution1D."""

    OUTPUT_PAD_RIGHT = 18
    OUTPUT_PAD_BOTTOM = 19
    OUTPUT_W = 20
    OUTPUT_H = 21
    DYNAMIC_WEIGHT = 28


class DeconvolutionDepthWise(Deconvolution):
    """Also DeconvolutionDepthWise1D."""

    GROUP = 7


class Deconvolution3D(_ConvolutionBase):
    """Also DeconvolutionDepthWise3D."""

    KERNEL_D = 21


class InnerProduct:
    NUM_OUTPUT = 0
    BIAS_TERM = 1
    WEIGHT_DATA_SIZE = 2
    INT8_SCALE_TERM = 8
    ACTIVATION_TYPE = 9
    ACTIVATION_PARAMS = 10


class Pooling:
    POOLING_TYPE = 0
    KERNEL_W = 1
    STRIDE_W = 2
    PAD_LEFT = 3
    GLOBAL_POOLING = 4
    PAD_MODE = 5
    AVGPOOL_COUNT_INCLUDE_PAD = 6
    ADAPTIVE_POOLING = 7
    OUT_W = 8
    KERNEL_H = 11
    STRIDE_H = 12
    PAD_TOP = 13
    PAD_RIGHT = 14
    PAD_BOTTOM = 15
    OUT_H = 18


class Padding:
    TOP = 0
    BOTTOM = 1
    LEFT = 2
    RIGHT = 3
    TYPE = 4  # 0 constant, 1 replicate, 2 reflect
    VALUE = 5
    PER_CHANNEL_PAD_DATA_SIZE = 6
    FRONT = 7
    BEHIND = 8


class BatchNorm:
    CHANNELS = 0
    EPS = 1


class Bias:
    BIAS_DATA_SIZE = 0


class Scale:
    SCALE_DATA_SIZE = 0  # -233: the scale comes from a second input blob
    BIAS_TERM = 1


class PReLU:
    NUM_SLOPE = 0


class Normalize:
    ACROSS_SPATIAL = 0
    CHANNEL_SHARED = 1
    EPS = 2
    SCALE_DATA_SIZE = 3


class InstanceNorm:
    CHANNELS = 0
    EPS = 1
    AFFINE = 2


class GroupNorm:
    GROUP = 0
    CHANNELS = 1
    EPS = 2
    AFFINE = 3


class LayerNorm:
    """Also RMSNorm."""

    AFFINE_SIZE = 0
    EPS = 1
    AFFINE = 2


class MemoryData:
    W = 0
    H = 1
    C = 2
    D = 11
    LOAD_TYPE = 21  # 0: tagged buffer, 1: bare fp32


class Embed:
    NUM_OUTPUT = 0
    INPUT_DIM = 1
    BIAS_TERM = 2
    WEIGHT_DATA_SIZE = 3
    INT8_SCALE_TERM = 18


class MultiHeadAttention:
    EMBED_DIM = 0
    NUM_HEADS = 1
    WEIGHT_DATA_SIZE = 2
    KDIM = 3
    VDIM = 4
    ATTN_MASK = 5  # 1: the mask is the last input blob
    KV_CACHE = 7  # 1: two more inputs (past key/value) and two more outputs
    INT8_SCALE_TERM = 18


class SDPA:
    ATTN_MASK = 5
    KV_CACHE = 7


class Gemm:
    ALPHA = 0
    BETA = 1
    TRANS_A = 2
    TRANS_B = 3
    CONSTANT_A = 4
    CONSTANT_B = 5
    CONSTANT_C = 6
    CONSTANT_M = 7
    CONSTANT_N = 8
    CONSTANT_K = 9
    CONSTANT_BROADCAST_TYPE_C = 10
    OUTPUT_TRANSPOSE = 14
    INT8_SCALE_TERM = 18


class RNN:
    """Also GRU; LSTM adds :attr:`LSTM.HIDDEN_SIZE`."""

    NUM_OUTPUT = 0
    WEIGHT_DATA_SIZE = 1
    DIRECTION = 2  # 0 forward, 1 reverse, 2 bidirectional
    INT8_SCALE_TERM = 8


class LSTM(RNN):
    HIDDEN_SIZE = 3


class Quantize:
    SCALE_DATA_SIZE = 0


class Dequantize:
    SCALE_DATA_SIZE = 0
    BIAS_DATA_SIZE = 1


class Requantize:
    SCALE_IN_DATA_SIZE = 0
    SCALE_OUT_DATA_SIZE = 1
    BIAS_DATA_SIZE = 2


class BinaryOp:
    OP_TYPE = 0
    WITH_SCALAR = 1
    B = 2


class Concat:
    AXIS = 0


class Slice:
    SLICES = 0
    AXIS = 1
    INDICES = 2


class Crop:
    WOFFSET = 0
    HOFFSET = 1
    COFFSET = 2
    OUTW = 3
    OUTH = 4
    OUTC = 5
    STARTS = 9
    ENDS = 10
    AXES = 11


class Reshape:
    W = 0
    H = 1
    C = 2
    PERMUTE = 3  # older ncnn
    D = 11


class Permute:
    ORDER_TYPE = 0


class Interp:
    RESIZE_TYPE = 0
    HEIGHT_SCALE = 1
    WIDTH_SCALE = 2
    OUTPUT_HEIGHT = 3
    OUTPUT_WIDTH = 4


class ShuffleChannel:
    GROUP = 0
    REVERSE = 1

"""Small hand-written ncnn graphs for model I/O tests."""

#: A tiny graph covering transformer and conv layer types whose weights ncnn reads differently.
TINY_TRANSFORMER = """7767517
13 13
Input            in        0 1 in 0=16 1=6
MemoryData       pos       0 1 pos 0=16 1=6
BinaryOp         addpos    2 1 in pos x0 0=0
LayerNorm        ln        1 1 x0 x1 0=16 1=1.000000e-05
MultiHeadAttention attn    1 1 x1 x2 0=16 1=4 2=256
Gemm             fc        1 1 x2 x3 3=1 5=1 6=1 8=32 9=16 10=4
GELU             act       1 1 x3 x4
InnerProduct     proj      1 1 x4 x5 0=10 1=1 2=320
Reshape          img       1 1 x5 x6 0=10 1=6 2=1
Convolution      conv      1 1 x6 x7 0=4 1=3 4=1 5=1 6=36
BatchNorm        bn        1 1 x7 x8 0=4
Deconvolution    up        1 1 x8 x9 0=2 1=2 3=2 5=1 6=32
PReLU            prelu     1 1 x9 out 0=2
"""

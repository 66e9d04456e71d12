"""edgekit runtime: ncnn model I/O, sessions, preprocessing, decoders and the CLI."""

__version__ = "0.1.0"

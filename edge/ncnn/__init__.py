"""ncnn core: the text .param and .bin formats, weight layouts, shape inference, validation, net opening."""

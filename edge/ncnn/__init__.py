"""ncnn core: the text .param and .bin formats, weight layouts, shape inference, validation, net opening.

- :mod:`.param` / :mod:`.param_ids`: the .param text format and named param ids per layer type
- :mod:`.weights` / :mod:`.layouts`: .bin buffer encodings and which buffers each layer type reads
- :mod:`.model`: :class:`~edge.ncnn.model.NcnnModel` (read, query, edit, write)
- :mod:`.shapes` (rules in :mod:`.shape_rules`, :mod:`.spatial_shapes`): blob shape inference
- :mod:`.validate`: everything ncnn would trip over, as one clear error
- :mod:`.net`: loading into ncnn and running, every return code checked
- :mod:`.synth`: generated weights for graph-only models
"""

"""The build manifest (``edgekit.manifest/2``): what a build takes as input, what it outputs,
how to decode it and its files per backend and precision. See docs/manifest.md.

``manifest.json`` sits in every build directory made by ``edgekit convert``. Everything that
runs a build (detect, eval, bench, calibrate, bundle) reads it through :func:`load_manifest`,
which validates it against the shipped JSON Schema and migrates v1 manifests in memory.
"""

from __future__ import annotations

from edge.decoders.spec import DecoderSpec
from edge.manifest.codec import SCHEMA_FILE, load_manifest, manifest_from_dict, manifest_to_dict, validate
from edge.manifest.model import (
    GENERATED_WEIGHTS_NOTE,
    MANIFEST_NAME,
    NCNN,
    PRECISIONS,
    SCHEMA,
    Artifact,
    FileRecord,
    InputSpec,
    Manifest,
    OutputSpec,
    Parity,
)
from edge.manifest.presets import decoder_spec_from_preset, input_spec_from_preset

__all__ = [
    "GENERATED_WEIGHTS_NOTE",
    "MANIFEST_NAME",
    "NCNN",
    "PRECISIONS",
    "SCHEMA",
    "SCHEMA_FILE",
    "Artifact",
    "DecoderSpec",
    "FileRecord",
    "InputSpec",
    "Manifest",
    "OutputSpec",
    "Parity",
    "decoder_spec_from_preset",
    "input_spec_from_preset",
    "load_manifest",
    "manifest_from_dict",
    "manifest_to_dict",
    "validate",
]

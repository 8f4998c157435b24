"""Marshmallow schemas: they document the API in /openapi.json.

Responses are built as plain dicts and `jsonify`-ed (the predict path is too hot for a schema
dump per request); these schemas describe them.
"""

from __future__ import annotations

import marshmallow as ma


class ModelSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE  # the training metadata has many more fields (see docs/training.md)

    name = ma.fields.String(required=True)
    created_at = ma.fields.String(metadata={"description": "ISO 8601 UTC"})
    test_accuracy = ma.fields.Float(allow_none=True)
    architecture = ma.fields.String(allow_none=True)
    size_bytes = ma.fields.Integer()
    modified_at = ma.fields.String(metadata={"description": "the file's mtime, ISO 8601 UTC"})
    status = ma.fields.String(metadata={
        "description": "`loaded` (in this worker's cache), `available` or `unloadable`"})
    error = ma.fields.String(allow_none=True, metadata={"description": "why it is unloadable"})
    runtime = ma.fields.String(metadata={
        "description": "for a loaded model, what runs it: `litert` (its TFLite copy) or `keras`"})
    preprocessing_version = ma.fields.Raw(metadata={
        "description": "the preprocessing version the model expects (an integer; 1 when its "
                       "metadata names none); a version this service does not know makes the "
                       "model unloadable"})


class ModelListSchema(ma.Schema):
    models = ma.fields.List(ma.fields.Nested(ModelSchema), metadata={"description": "newest first"})
    default = ma.fields.String(allow_none=True, metadata={
        "description": "the model used when a request names none"})


class PredictJsonSchema(ma.Schema):
    image = ma.fields.String(required=True, metadata={
        "description": "the image file as base64, or a data URL (data:image/png;base64,...)"})
    model = ma.fields.String(metadata={"description": "a model name; default: the default model"})


class PredictMultipartSchema(ma.Schema):
    image = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    model = ma.fields.String()


class PredictionSchema(ma.Schema):
    model = ma.fields.String()
    digit = ma.fields.Integer(metadata={"description": "0 to 9"})
    confidence = ma.fields.Float(metadata={"description": "the probability of `digit`"})
    probabilities = ma.fields.List(ma.fields.Float(), metadata={"description": "10, for 0..9"})
    preprocessed = ma.fields.String(metadata={
        "description": "the 28×28 image the model saw, as a PNG data URL"})
    preprocessing_version = ma.fields.Integer(metadata={
        "description": "the preprocessing version that made `preprocessed`: the model's "
                       "(its metadata's `preprocessing.version`, 1 when it has none)"})


class PredictBatchJsonSchema(ma.Schema):
    images = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "1 to 64 image files, each as base64 or a data URL"})
    model = ma.fields.String(metadata={"description": "a model name; default: the default model"})


class BatchErrorBodySchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "stable snake_case error code"})
    message = ma.fields.String(metadata={"description": "what went wrong, for people"})


class BatchItemSchema(ma.Schema):
    """One image's answer in a batch: its prediction, or `error` instead."""

    digit = ma.fields.Integer(metadata={"description": "0 to 9"})
    confidence = ma.fields.Float()
    probabilities = ma.fields.List(ma.fields.Float())
    preprocessed = ma.fields.String()
    preprocessing_version = ma.fields.Integer()
    error = ma.fields.Nested(BatchErrorBodySchema, metadata={
        "description": "instead of the prediction, for an image that can't be read"})


class BatchPredictionSchema(ma.Schema):
    model = ma.fields.String()
    predictions = ma.fields.List(ma.fields.Nested(BatchItemSchema), metadata={
        "description": "one per image, in the order sent"})


class StatusSchema(ma.Schema):
    status = ma.fields.String()
    reason = ma.fields.String()


# ---------------------------------------------------------------- Open Inference Protocol (/v2)
#
# The protocol's JSON objects, as far as this service reads and writes them (routes/v2.py).


class V2ErrorSchema(ma.Schema):
    """The protocol's error body (not the service's own `{"error": {"code", "message"}}`)."""

    error = ma.fields.String(required=True)


class V2ServerMetadataSchema(ma.Schema):
    name = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    extensions = ma.fields.List(ma.fields.String(), required=True)


class V2TensorMetadataSchema(ma.Schema):
    name = ma.fields.String(required=True)
    datatype = ma.fields.String(required=True)
    shape = ma.fields.List(ma.fields.Integer(), required=True,
                           metadata={"description": "-1: any size"})


class V2ModelMetadataSchema(ma.Schema):
    name = ma.fields.String(required=True)
    versions = ma.fields.List(ma.fields.String())
    platform = ma.fields.String(required=True)
    inputs = ma.fields.List(ma.fields.Nested(V2TensorMetadataSchema), required=True)
    outputs = ma.fields.List(ma.fields.Nested(V2TensorMetadataSchema), required=True)


class V2InputSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"enum": ["input", "image"]})
    shape = ma.fields.List(ma.fields.Integer(), required=True)
    datatype = ma.fields.String(required=True, metadata={"enum": ["FP32", "BYTES"]})
    parameters = ma.fields.Dict(metadata={
        "description": "binary_data_size: the input's bytes follow the JSON (binary extension)"})
    data = ma.fields.Raw(metadata={
        "description": "`input`: numbers in [0, 1], flat or nested; `image`: base64 strings "
                       "or data URLs of image files"})


class V2RequestedOutputSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"enum": ["probabilities", "digit"]})
    parameters = ma.fields.Dict(metadata={"description": "binary_data: true for binary"})


class V2InferRequestSchema(ma.Schema):
    id = ma.fields.String()
    parameters = ma.fields.Dict(metadata={
        "description": "binary_data_output: true for every output in binary"})
    inputs = ma.fields.List(ma.fields.Nested(V2InputSchema), required=True,
                            metadata={"description": "exactly one: `input` or `image`"})
    outputs = ma.fields.List(ma.fields.Nested(V2RequestedOutputSchema))


class V2OutputSchema(ma.Schema):
    name = ma.fields.String(required=True)
    shape = ma.fields.List(ma.fields.Integer(), required=True)
    datatype = ma.fields.String(required=True)
    parameters = ma.fields.Dict()
    data = ma.fields.List(ma.fields.Raw(), metadata={"description": "flat, row-major"})


class V2InferResponseSchema(ma.Schema):
    model_name = ma.fields.String(required=True)
    model_version = ma.fields.String()
    id = ma.fields.String()
    outputs = ma.fields.List(ma.fields.Nested(V2OutputSchema), required=True)

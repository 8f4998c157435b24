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


class StatusSchema(ma.Schema):
    status = ma.fields.String()
    reason = ma.fields.String()

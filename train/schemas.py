"""Request and response schemas: they document the API in /openapi.json.

The run request's schema reads the JSON types (an integer is an integer, no unknown fields) but
checks no bound, choice or pattern: params.resolve is the one validator of training parameters.
The bounds still appear in /openapi.json, from the same constants, as documentation.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from train.architectures import ARCHITECTURES
from train.errors import ErrorDetailSchema, ErrorSchema  # noqa: F401 - ErrorSchema: for the routes
from train.lifecycle import STATES
from train.params import BATCH_SIZE_BOUNDS, EPOCHS_BOUNDS, LEARNING_RATE_MAX, LIMIT_MIN
from train.volume import NAME_PATTERN


def between(low, high) -> dict:
    return {"minimum": low, "maximum": high}


class RunRequestSchema(ma.Schema):
    """Every field is optional: what is left out takes the architecture's recipe default."""

    epochs = ma.fields.Integer(strict=True, metadata=between(*EPOCHS_BOUNDS))
    batch_size = ma.fields.Integer(strict=True, metadata=between(*BATCH_SIZE_BOUNDS))
    learning_rate = ma.fields.Float(allow_nan=False, metadata={
        **between(0.0, LEARNING_RATE_MAX), "exclusiveMinimum": True})
    architecture = ma.fields.String(metadata={"enum": list(ARCHITECTURES)})
    dataset = ma.fields.String(metadata={"description": "see GET /api/train/options"})
    limit = ma.fields.Integer(strict=True, allow_none=True, metadata={
        "minimum": LIMIT_MIN, "description": "train on only this many digits"})
    augment = ma.fields.Boolean(metadata={"description": "shifts, rotations, zoom, thickness"})
    name = ma.fields.String(metadata={"pattern": NAME_PATTERN.pattern,
                                      "description": "model name; default <arch>-<date>-<time>"})


class RunSchema(ma.Schema):
    id = ma.fields.String()
    state = ma.fields.String(validate=validate.OneOf(STATES))
    phase = ma.fields.String(metadata={"description": "queued, loading data, training, ..."})
    params = ma.fields.Dict()
    created_at = ma.fields.String()
    started_at = ma.fields.String(allow_none=True)
    finished_at = ma.fields.String(allow_none=True)
    updated_at = ma.fields.String(allow_none=True)
    heartbeat_at = ma.fields.String(allow_none=True)
    epoch = ma.fields.Integer()
    epochs = ma.fields.Integer()
    step = ma.fields.Integer()
    steps = ma.fields.Integer(allow_none=True)
    progress = ma.fields.Float(metadata={"description": "0..1, never goes backwards"})
    eta_seconds = ma.fields.Float(allow_none=True)
    elapsed_seconds = ma.fields.Float(allow_none=True)
    metrics = ma.fields.Dict(metadata={"description": "latest loss, accuracy (and val_*)"})
    history = ma.fields.List(ma.fields.Dict(), metadata={"description": "one entry per epoch"})
    model = ma.fields.String(allow_none=True, metadata={"description": "when succeeded"})
    test_accuracy = ma.fields.Float(allow_none=True)
    error = ma.fields.String(allow_none=True, metadata={"description": "when failed"})
    stop_requested = ma.fields.Boolean()
    stop_requested_at = ma.fields.String(allow_none=True)
    message = ma.fields.String(allow_none=True, metadata={
        "description": "a note, e.g. why a stopped run's job was ended by force"})
    executor = ma.fields.Dict(allow_none=True)
    pid = ma.fields.Integer(allow_none=True)


class RunListSchema(ma.Schema):
    runs = ma.fields.List(ma.fields.Nested(RunSchema), metadata={"description": "newest first"})


class OptionsSchema(ma.Schema):
    architectures = ma.fields.List(ma.fields.Dict())
    datasets = ma.fields.List(ma.fields.Dict())
    defaults = ma.fields.Dict()
    bounds = ma.fields.Dict()


class DeletedSchema(ma.Schema):
    deleted = ma.fields.String()
    files = ma.fields.List(ma.fields.String())


class StatusSchema(ma.Schema):
    """What /healthz and /readyz answer (a 503 from /readyz: an `error`)."""

    status = ma.fields.String(metadata={"description": "`ok` (alive) or `ready`"})
    executor = ma.fields.String(metadata={"description": "/readyz: local or kubernetes"})
    error = ma.fields.Nested(ErrorDetailSchema)


# ---------------------------------------------------------------- feedback (docs/feedback.md)


class FeedbackSampleSchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "24 hex digits, from the image's pixels"})
    label = ma.fields.Integer(metadata=between(0, 9))
    predicted = ma.fields.Integer(metadata=between(0, 9))
    confidence = ma.fields.Float(metadata=between(0, 1))
    model = ma.fields.String()
    preprocessing_version = ma.fields.Integer()
    created_at = ma.fields.String()
    reviewed = ma.fields.Boolean()
    reviewed_at = ma.fields.String(allow_none=True)
    correct = ma.fields.Boolean(metadata={"description": "label == predicted"})
    split = ma.fields.String(validate=validate.OneOf(["train", "test"]),
                             metadata={"description": "fixed by a hash of the id"})
    image_url = ma.fields.String()
    original_url = ma.fields.String(allow_none=True)


class FeedbackSavedSchema(FeedbackSampleSchema):
    duplicate = ma.fields.Boolean(metadata={
        "description": "true: this image was stored before; the stored sample, unchanged"})


class FeedbackCountsSchema(ma.Schema):
    total = ma.fields.Integer()
    wrong = ma.fields.Integer()
    unreviewed = ma.fields.Integer()


class FeedbackListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(FeedbackSampleSchema),
                           metadata={"description": "newest first"})
    total = ma.fields.Integer(metadata={"description": "samples matching the filters"})
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    counts = ma.fields.Nested(FeedbackCountsSchema, metadata={"description": "over all samples"})


class FeedbackQuerySchema(ma.Schema):
    label = ma.fields.Integer(strict=False, validate=validate.Range(0, 9))
    model = ma.fields.String(validate=validate.Length(1, 64))
    wrong = ma.fields.Boolean(metadata={"description": "true: only wrong; false: only right"})
    reviewed = ma.fields.Boolean()
    page = ma.fields.Integer(load_default=1, validate=validate.Range(1, 1_000_000))
    per_page = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))


class FeedbackExportQuerySchema(ma.Schema):
    include_unreviewed = ma.fields.Boolean(load_default=False)


class EvaluateRequestSchema(ma.Schema):
    dataset = ma.fields.String(required=True, metadata={
        "description": "feedback, mnist, mnist-5k or a volume data set: its test split"})
    include_unreviewed = ma.fields.Boolean(load_default=False, metadata={
        "description": "feedback: score on unreviewed test samples too"})


class EvaluationSchema(ma.Schema):
    model = ma.fields.String()
    dataset = ma.fields.String()
    split = ma.fields.String()
    size = ma.fields.Integer()
    accuracy = ma.fields.Float()
    per_class_accuracy = ma.fields.List(ma.fields.Float(allow_none=True))
    confusion_matrix = ma.fields.List(ma.fields.List(ma.fields.Integer()))
    evaluated_at = ma.fields.String()
    include_unreviewed = ma.fields.Boolean()
    ids_sha256 = ma.fields.String(metadata={"description": "feedback: which samples"})
    preprocessing_version = ma.fields.Integer(metadata={
        "description": "the model's: the test digits as it sees them"})
    seconds = ma.fields.Float()

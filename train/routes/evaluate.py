"""`POST /api/models/<name>/evaluate`: score a model on a data set's test split.

The score is stored in the model's metadata under `evaluations[<dataset>]`, where the Models view
reads it (through inference's `GET /api/models`). The work runs in a child process
(train.evaluate): a few seconds for MNIST's 10,000 test digits, well under a second for the
feedback test split; one evaluation at a time per worker, so a burst can't pile up TensorFlow
processes on the machine.
"""

from __future__ import annotations

import threading

from flask_smorest import Blueprint

from train.auth import require_token
from train.datasets import available_datasets
from train.errors import ApiError
from train.evaluate import (
    EVALUATE_TIMEOUT_SECONDS,
    EvaluationError,
    evaluate_in_subprocess,
    test_set,
)
from train.feedback_data import FEEDBACK
from train.routes import service, settings
from train.schemas import ErrorSchema, EvaluateRequestSchema, EvaluationSchema
from train.volume import is_valid_name

blp = Blueprint("evaluate", __name__, url_prefix="/api/models",
                description="Scores of saved models on the same test sets.")

ONE_AT_A_TIME = threading.Lock()


@blp.route("/<name>/evaluate", methods=["POST"])
@require_token
@blp.arguments(EvaluateRequestSchema, location="json")
@blp.response(200, EvaluationSchema)
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(404, schema=ErrorSchema, description="model_not_found")
@blp.alt_response(409, schema=ErrorSchema, description="empty_test_set: no feedback test "
                  "samples yet")
@blp.alt_response(422, schema=ErrorSchema, description="unknown data set, unloadable model")
@blp.alt_response(503, schema=ErrorSchema, description="busy or timed out")
def evaluate_model(request: dict, name: str):
    """Score a model on a data set's test split; stored in its metadata's `evaluations`."""
    dataset = request["dataset"]
    if not is_valid_name(name) or name not in service().models():
        raise ApiError(404, "model_not_found", f"there is no model {name!r}")
    model_dir = settings().model_dir
    choices = [*available_datasets(model_dir), FEEDBACK]
    if dataset not in choices:
        raise ApiError(422, "invalid_dataset", f"dataset must be one of {', '.join(choices)}")
    if not ONE_AT_A_TIME.acquire(timeout=EVALUATE_TIMEOUT_SECONDS / 2):
        raise ApiError(503, "evaluation_busy", "other evaluations are running; try again",
                       headers={"Retry-After": "10"})
    try:
        if dataset == FEEDBACK:  # refused here, cheaply, rather than in a TensorFlow process
            test_set(FEEDBACK, model_dir, request["include_unreviewed"])
        return evaluate_in_subprocess(model_dir, name, dataset, request["include_unreviewed"])
    except EvaluationError as error:
        raise ApiError(error.status, error.code, error.message) from None
    finally:
        ONE_AT_A_TIME.release()

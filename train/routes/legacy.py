"""The earlier API's five routes, kept working for its clients (shapes in the README).

They map onto the run API: start with defaults, stop the active run, the latest run's progress,
whether a model exists or is being trained, and the newest model's accuracy. Like the run API's
routes they only call the service, which raises the domain errors errors.py maps to HTTP.
"""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint

from train.auth import require_token
from train.lifecycle import is_active
from train.routes import service
from train.schemas import ErrorSchema, RunRequestSchema, RunSchema

blp = Blueprint("earlier", __name__, url_prefix="/api",
                description="The earlier API's routes (kept for its clients).")


class StartedSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "`started`"})
    message = ma.fields.String()
    run_id = ma.fields.String()
    run = ma.fields.Nested(RunSchema)


class StoppingSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "`stopping`"})
    message = ma.fields.String()
    run_id = ma.fields.String()


class ProgressSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "idle or the run's state"})
    is_training = ma.fields.Boolean()
    run_id = ma.fields.String(allow_none=True)
    epoch = ma.fields.Integer()
    total_epochs = ma.fields.Integer()
    progress = ma.fields.Float(metadata={"description": "percent, 0..100"})
    loss = ma.fields.Float(allow_none=True)
    accuracy = ma.fields.Float(allow_none=True)
    eta_seconds = ma.fields.Float(allow_none=True)
    model = ma.fields.String(allow_none=True)
    error = ma.fields.String(allow_none=True)


class ModelStatusSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "training, ready or no_model"})
    is_training = ma.fields.Boolean()
    model_exists = ma.fields.Boolean()
    model = ma.fields.String(allow_none=True, metadata={"description": "the newest model"})
    run_id = ma.fields.String(allow_none=True, metadata={"description": "the active run"})


class AccuracySchema(ma.Schema):
    model = ma.fields.String()
    accuracy = ma.fields.Float(allow_none=True, metadata={"description": "test accuracy, 0..1"})
    test_loss = ma.fields.Float(allow_none=True)
    dataset = ma.fields.Dict(allow_none=True)
    created_at = ma.fields.String(allow_none=True)


@blp.route("/retrain_model/", methods=["POST"])
@require_token
@blp.arguments(RunRequestSchema, location="json", required=False)
@blp.response(202, StartedSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="a run is active (its run_id)")
@blp.alt_response(422, schema=ErrorSchema)
def retrain_model(request: dict):
    """Start a training run with the defaults (optional JSON fields as POST /api/train/runs)."""
    run = service().start(request)
    return {"status": "started", "message": f"training started (run {run['id']})",
            "run_id": run["id"], "run": run}


@blp.route("/stop_training/", methods=["POST"])
@require_token
@blp.response(202, StoppingSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="no run is active")
def stop_training():
    """Stop the active run."""
    run = service().stop_active()
    return {"status": "stopping", "message": f"stopping run {run['id']}", "run_id": run["id"]}


@blp.route("/training_progress/", methods=["GET"])
@blp.response(200, ProgressSchema)
def training_progress():
    """Progress of the active run, else of the latest run, else `idle`."""
    run = service().current_run()
    if run is None:
        return {"status": "idle", "is_training": False, "run_id": None, "epoch": 0,
                "total_epochs": 0, "progress": 0.0}
    metrics = run.get("metrics") or {}
    return {"status": run["state"], "is_training": is_active(run), "run_id": run["id"],
            "epoch": run.get("epoch", 0), "total_epochs": run.get("epochs", 0),
            "progress": round(100 * float(run.get("progress") or 0), 2),
            "loss": metrics.get("loss"), "accuracy": metrics.get("accuracy"),
            "eta_seconds": run.get("eta_seconds"), "model": run.get("model"),
            "error": run.get("error")}


@blp.route("/check_model_status/", methods=["GET"])
@blp.response(200, ModelStatusSchema)
def check_model_status():
    """Whether a model exists and whether one is being trained."""
    active = service().active_run()
    newest = service().newest_model()
    status = "training" if active else ("ready" if newest else "no_model")
    return {"status": status, "is_training": active is not None,
            "model_exists": newest is not None, "model": newest[0] if newest else None,
            "run_id": active["id"] if active else None}


@blp.route("/model_accuracy/", methods=["GET"])
@blp.response(200, AccuracySchema)
@blp.alt_response(404, schema=ErrorSchema, description="no model in the volume")
def model_accuracy():
    """The newest model's test accuracy."""
    name, metadata = service().require_newest_model()
    metadata = metadata or {}
    return {"model": name, "accuracy": metadata.get("test_accuracy"),
            "test_loss": metadata.get("test_loss"), "dataset": metadata.get("dataset"),
            "created_at": metadata.get("created_at")}

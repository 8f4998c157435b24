"""`/api/train/*`: start, list, watch and stop runs; options; delete models.

Views call the service and return what it gives; its errors become HTTP in errors.py.
"""

from __future__ import annotations

import json
import time

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from train.auth import require_token
from train.lifecycle import is_active
from train.routes import service
from train.schemas import (
    DeletedSchema,
    ErrorSchema,
    OptionsSchema,
    RunListSchema,
    RunRequestSchema,
    RunSchema,
)

blp = Blueprint("train", __name__, url_prefix="/api/train",
                description="Training runs (jobs outside the web workers) and saved models.")

EVENT_POLL_SECONDS = 0.25
EVENT_KEEPALIVE_SECONDS = 15.0


@blp.route("/runs", methods=["POST"])
@require_token
@blp.arguments(RunRequestSchema, location="json", required=False)
@blp.response(202, RunSchema)
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(409, schema=ErrorSchema, description="another run is active (its run_id)")
@blp.alt_response(422, schema=ErrorSchema, description="a bad parameter, named in fields")
def create_run(request: dict):
    """Start a training run; every field is optional (defaults: GET /api/train/options)."""
    return service().start(request)


@blp.route("/runs", methods=["GET"])
@blp.response(200, RunListSchema)
def list_runs():
    """Every run, newest first."""
    return {"runs": service().runs()}


@blp.route("/runs/<run_id>", methods=["GET"])
@blp.response(200, RunSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_run(run_id: str):
    """One run: state, progress, latest metrics, history, model or error."""
    return service().require(run_id)


@blp.route("/runs/<run_id>/stop", methods=["POST"])
@require_token
@blp.response(202, RunSchema)
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="the run has already finished")
def stop_run(run_id: str):
    """Ask a run to stop: it becomes `stopping`, then `stopped` after the current batch."""
    return service().stop(run_id)


def event(run: dict, number: int) -> str:
    return f"id: {number}\nevent: progress\ndata: {json.dumps(run)}\n\n"


def substance(run: dict) -> dict:
    """The run without its timestamps of liveness: what an event is worth sending for."""
    return {key: value for key, value in run.items() if key not in ("heartbeat_at", "updated_at")}


def run_events(run_id: str, first: dict):
    """One `progress` event per change of the run, then `end` once it has finished."""
    last, number, quiet_since = None, 0, time.monotonic()
    run = first
    while True:
        if substance(run) != last:
            number += 1
            yield event(run, number)
            last, quiet_since = substance(run), time.monotonic()
        if not is_active(run):
            yield f"event: end\ndata: {json.dumps({'state': run['state']})}\n\n"
            return
        if time.monotonic() - quiet_since > EVENT_KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"  # a comment line keeps proxies from closing the stream
            quiet_since = time.monotonic()
        time.sleep(EVENT_POLL_SECONDS)
        run = service().get(run_id) or run


@blp.route("/runs/<run_id>/events", methods=["GET"])
@blp.doc(responses={"200": {
    "description": "Server-sent events: `progress` (data: the run as JSON) on every change, "
                   "then `end` (data: {state}) when the run has finished.",
    # The schema of one event (fields as a client's EventSource parses them), not of the stream.
    "content": {"text/event-stream": {"schema": {
        "type": "object", "required": ["event", "data"],
        "properties": {"event": {"type": "string", "enum": ["progress", "end"]},
                       "data": {"type": "string", "description": "JSON: the run, or {state}"},
                       "id": {"type": "string"}}}}}}})
@blp.alt_response(404, schema=ErrorSchema)
def run_events_stream(run_id: str):
    """Watch a run live (server-sent events)."""
    first = service().require(run_id)
    return Response(stream_with_context(run_events(run_id, first)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@blp.route("/options", methods=["GET"])
@blp.response(200, OptionsSchema)
def get_options():
    """The architectures and data sets on offer, with their defaults and the parameter bounds."""
    return service().options()


@blp.route("/models/<name>", methods=["DELETE"])
@require_token
@blp.response(200, DeletedSchema)
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(404, schema=ErrorSchema)
def delete_model(name: str):
    """Remove a model and its metadata from the volume."""
    service().delete_model(name)
    return {"deleted": name, "files": [f"{name}.keras", f"{name}.json"]}

"""GET /api/models and /api/models/<name>: what is on the volume."""

from __future__ import annotations

import io

from flask import current_app, jsonify, request, send_file
from flask_smorest import Blueprint

from .. import export
from ..errors import ApiError, ErrorSchema
from ..model_cache import ModelUnavailableError
from ..schemas import ModelListSchema, ModelSchema

blp = Blueprint("models", __name__, url_prefix="/api/models",
                description="The models on the volume and their metadata")


@blp.route("")
@blp.alt_response(200, schema=ModelListSchema, success=True, description="newest first")
def list_models():
    """List the models and name the default one."""
    models, default = current_app.extensions["model_cache"].list_models()
    return jsonify({"models": models, "default": default})


# Before the `path:` route below: Werkzeug prefers this rule's static "/export" for such URLs.
@blp.route("/<name>/export")
@blp.doc(
    parameters=[{"in": "query", "name": "format", "required": False,
                 "schema": {"type": "string", "enum": list(export.FORMATS),
                            "default": "savedmodel"}}],
    responses={"200": {"description": "a .tar.gz in Triton's model repository layout: "
                                      "<name>/config.pbtxt, <name>/1/model.savedmodel/ "
                                      "(or <name>/1/model.onnx)",
                       "content": {"application/gzip": {"schema": {"type": "string",
                                                                   "format": "binary"}}}}},
)
@blp.alt_response(400, schema=ErrorSchema, description="invalid model name or format")
@blp.alt_response(404, schema=ErrorSchema, description="no such model")
@blp.alt_response(503, schema=ErrorSchema, description="the model file can't be loaded")
def export_model(name: str):
    """The model as a SavedModel (Triton, TF Serving) or ONNX (docs/deployment.md)."""
    fmt = request.args.get("format", "savedmodel")
    if fmt not in export.FORMATS:
        raise ApiError(400, "unsupported_export_format",
                       f"format must be one of {', '.join(export.FORMATS)}, not {fmt[:40]!r}.")
    model = current_app.extensions["model_volume"].find(name)
    try:
        archive = export.export_archive(model.path, model.name, fmt)
    except Exception as exc:  # noqa: BLE001 - a broken file is this model's problem, not a 500
        raise ModelUnavailableError(name, f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    return send_file(io.BytesIO(archive), mimetype="application/gzip", as_attachment=True,
                     download_name=f"{model.name}-{fmt}.tar.gz")


# `path:` so that "a/../b" reaches us and gets a clear 400 rather than a bare routing 404.
@blp.route("/<path:name>")
@blp.alt_response(200, schema=ModelSchema, success=True)
@blp.alt_response(400, schema=ErrorSchema, description="invalid model name")
@blp.alt_response(404, schema=ErrorSchema, description="no such model")
def get_model(name: str):
    """One model's metadata."""
    model = current_app.extensions["model_volume"].find(name)
    return jsonify(current_app.extensions["model_cache"].describe(model))

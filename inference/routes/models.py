"""GET /api/models and /api/models/<name>: what is on the volume."""

from __future__ import annotations

from flask import current_app, jsonify
from flask_smorest import Blueprint

from ..errors import ErrorSchema
from ..schemas import ModelListSchema, ModelSchema

blp = Blueprint("models", __name__, url_prefix="/api/models",
                description="The models on the volume and their metadata")


@blp.route("")
@blp.alt_response(200, schema=ModelListSchema, success=True, description="newest first")
def list_models():
    """List the models and name the default one."""
    models, default = current_app.extensions["model_cache"].list_models()
    return jsonify({"models": models, "default": default})


# `path:` so that "a/../b" reaches us and gets a clear 400 rather than a bare routing 404.
@blp.route("/<path:name>")
@blp.alt_response(200, schema=ModelSchema, success=True)
@blp.alt_response(400, schema=ErrorSchema, description="invalid model name")
@blp.alt_response(404, schema=ErrorSchema, description="no such model")
def get_model(name: str):
    """One model's metadata."""
    model = current_app.extensions["model_volume"].find(name)
    return jsonify(current_app.extensions["model_cache"].describe(model))

"""The train service's HTTP routes, one blueprint per concern; each goes through the service."""

from __future__ import annotations

from flask import current_app

from train.config import Settings
from train.service import TrainingService


def service() -> TrainingService:
    """The app's TrainingService (made by create_app)."""
    return current_app.extensions["train.service"]


def settings() -> Settings:
    """The app's Settings (config.py)."""
    return current_app.extensions["train.settings"]

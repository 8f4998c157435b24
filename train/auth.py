"""`TRAIN_API_TOKEN`: when set, mutating routes need `Authorization: Bearer <token>`."""

from __future__ import annotations

import functools
import hmac

from flask import current_app, request

from train.errors import ApiError


def token_ok(expected: str, header: str | None) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # compare_digest takes the same time whatever the first differing character is.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              expected.encode())


def require_token(view):
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        expected = current_app.extensions["train.settings"].api_token
        if expected and not token_ok(expected, request.headers.get("Authorization")):
            raise ApiError(401, "unauthorized",
                           "this route needs the header Authorization: Bearer <TRAIN_API_TOKEN>",
                           headers={"WWW-Authenticate": 'Bearer realm="digits-train"'})
        return view(*args, **kwargs)

    return guarded

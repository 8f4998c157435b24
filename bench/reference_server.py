"""The seed-style reference for `make bench`: what a first version of the service looks like.

Flask's development server, a global Keras model, and per request: decode with Pillow,
grayscale, resize to 28×28, normalise to [0, 1], `model.predict`. No centring, no polarity,
no compiled call. Same route and request bodies as the real service (multipart `image`, or JSON
`{"image": "<base64>"}`), so `wrk` can hit both.

    python bench/reference_server.py MODEL.keras PORT
"""

from __future__ import annotations

import base64
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from PIL import Image  # noqa: E402


def create_app(model_path: str) -> Flask:
    app = Flask(__name__)
    model = keras.saving.load_model(model_path, safe_mode=True)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/api/predict")
    def predict():
        if request.is_json:  # {"image": "<base64>"}, as the page sends
            data = base64.b64decode(request.get_json()["image"])
        else:
            data = request.files["image"].read()
        image = Image.open(io.BytesIO(data)).convert("L")
        pixels = np.asarray(image.resize((28, 28)), dtype=np.float32) / 255.0
        probabilities = model.predict(pixels.reshape(1, 28, 28, 1), verbose=0)[0]
        return jsonify({"digit": int(probabilities.argmax()),
                        "probabilities": [float(p) for p in probabilities]})

    return app


if __name__ == "__main__":
    model_path, port = sys.argv[1], int(sys.argv[2])
    create_app(model_path).run(host="127.0.0.1", port=port, threaded=True)

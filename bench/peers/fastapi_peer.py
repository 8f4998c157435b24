"""`make bench`'s plain FastAPI + uvicorn peer: /api/predict as the service has it (multipart
file `image`, or JSON {"image": "<base64>"}), with this project's preprocessing and traced
forward function (bench/peers/common.py).

    python bench/peers/fastapi_peer.py MODEL.keras PORT [WORKERS]

Run with the peer environment's Python (bench/peers/requirements.txt): uvicorn's own worker
processes (spawned, each loads the model at start-up), its default event loop and HTTP parser.
"""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager

from common import Predictor, image_from_base64
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

state: dict = {}


@asynccontextmanager
async def lifespan(_app):
    state["predictor"] = Predictor(os.environ["PEER_MODEL_PATH"])
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.post("/api/predict")
async def predict(request: Request):
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        data = await form["image"].read()
    else:
        data = image_from_base64((await request.json())["image"])
    return JSONResponse(state["predictor"].answer(data))


if __name__ == "__main__":
    import uvicorn

    model_path, port = sys.argv[1], int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    os.environ["PEER_MODEL_PATH"] = model_path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run("fastapi_peer:app", host="127.0.0.1", port=port, workers=workers,
                log_level="warning", access_log=False)

"""`make bench`'s KServe peer: KServe's Python model server serving a `.keras` model the way this
project does (its preprocessing and traced forward function, bench/peers/common.py).

    python bench/peers/kserve_peer.py MODEL.keras PORT [WORKERS]

Run with the peer environment's Python (bench/peers/requirements.txt). The route is KServe's
v1 predict, /v1/models/<model>:predict, with the service's JSON body {"image": "<base64>"}
(KServe's v1 protocol passes the JSON object to the model as it is). With WORKERS > 1 KServe
starts that many uvicorn processes by `spawn` and sends each a pickled copy of the model: the
TensorFlow function is made in each process, in a thread started when it is unpickled (KServe
kills a child that does not answer its parent's ping within 5 s, and loading takes longer).
"""

from __future__ import annotations

import sys
import threading

import kserve
from common import Predictor, image_from_base64


class DigitsModel(kserve.Model):
    def __init__(self, name: str, model_path: str):
        super().__init__(name)
        self.model_path = model_path
        self.predictor = None
        self.ready = True  # the TensorFlow function is made in each worker (see __setstate__)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["predictor"] = None
        state.pop("_loaded", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loaded = threading.Event()
        threading.Thread(target=self._load, daemon=True).start()

    def _load(self):
        self.predictor = Predictor(self.model_path)
        self._loaded.set()

    def predict(self, payload, headers=None):
        if self.predictor is None:
            if hasattr(self, "_loaded"):
                self._loaded.wait()
            else:  # one worker: no pickling
                self.predictor = Predictor(self.model_path)
        return self.predictor.answer(image_from_base64(payload["image"]))


if __name__ == "__main__":
    model_path, port = sys.argv[1], sys.argv[2]
    workers = sys.argv[3] if len(sys.argv) > 3 else "2"
    sys.argv = [sys.argv[0], "--http_port", port, "--workers", workers, "--enable_grpc", "false"]
    from pathlib import Path

    kserve.ModelServer(http_port=int(port), workers=int(workers), enable_grpc=False).start(
        [DigitsModel(Path(model_path).stem, model_path)])

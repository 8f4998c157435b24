"""The train service: training runs as jobs outside the web workers, models saved to the volume.

`create_app()` is the Flask application factory used by gunicorn (`train:create_app()`).
Heavy modules (TensorFlow) are imported only by the job and the CLI, never by the web app.
"""


def create_app(test_config: dict | None = None):
    from train.app import build_app

    return build_app(test_config)

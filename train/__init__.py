"""The train service: training runs as jobs outside the web workers, models saved to the volume.

`create_app()` is the Flask application factory used by gunicorn (`train:create_app()`).
Importing `train` (or `train.params`, `train.volume`...) imports neither Flask nor TensorFlow:
Flask comes with an app, TensorFlow only with the job and the CLI, never with the web app.
"""


def create_app(test_config=None):
    from train.app import create_app as factory  # Flask only when an app is made

    return factory(test_config)

"""The inference service: which digit is in an image, with any model on the volume.

`create_app()` is the application factory that gunicorn runs (see gunicorn.conf.py). Importing
this package imports nothing else, so `import inference.preprocess` (bench, tests) does not
start Flask or TensorFlow.
"""


def create_app(test_config=None):
    from inference.app import create_app as factory  # Flask only when an app is made

    return factory(test_config)

"""`facedancer serve`: a web page and an HTTP API over one loaded FaceSwapper.

settings.py (limits, token, folders), storage.py (private files with random names, expiry), jobs.py (the
bounded job queue and its workers), uploads.py (what an upload is, decided by its content), engine.py (a
per-request view of the shared swapper; the swapping itself is facedancer.swap / swap_video), app.py (the
FastAPI routes), page.html (the browser page, which only calls the API).
"""

from facedancer.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str):
    # The app needs the `serve` extra (fastapi); importing the settings alone must not.
    if name == "create_app":
        from facedancer.serve.app import create_app

        return create_app
    raise AttributeError(name)

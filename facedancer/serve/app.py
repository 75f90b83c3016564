"""The FastAPI application: the page, the HTTP API, limits, the bearer token, and the error format.

Every error answers JSON {"detail": "one line"} with the status documented in the README.
"""

import asyncio
import hmac
import json
import logging
import shutil
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from facedancer.serve.engine import SwapEngine, SwapRequest
from facedancer.serve.jobs import DONE, FINISHED, Job, JobQueue, QueueFull
from facedancer.serve.settings import TOKEN_ENV, ServeSettings
from facedancer.serve.storage import Storage
from facedancer.serve.uploads import ServeError, check_video_upload, encode_image, read_image_upload
from facedancer.swap import SELECT_MODES

log = logging.getLogger(__name__)


# Form fields of the swap requests (FastAPI reads these annotations at run time: no postponed annotations here).
Target = Annotated[UploadFile, File(description="target photo (POST /v1/swap) or video (POST /v1/jobs)")]
Sources = Annotated[list[UploadFile] | None, File(description="photo(s) of the identity to put on the faces")]
References = Annotated[list[UploadFile] | None, File(description="with select=reference: the person to replace")]
Select = Annotated[str, Form(description="all, largest, or reference")]
Strength = Annotated[float, Form(description="0 = the target's own identity, 1 = the source's, up to 1.5")]
Anonymize = Annotated[float | None, Form(description="percent towards a synthetic identity; needs no source")]


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, by Content-Length or while it streams in."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        mb = self.max_bytes / 1024 / 1024
        body = json.dumps({"detail": f"upload too large: the limit is {mb:g} MB per request"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class Service:
    """What the routes share: settings, engine, storage and the two queues (videos; images)."""

    def __init__(self, swapper, settings: ServeSettings):
        self.settings = settings
        self.engine = SwapEngine(swapper, settings)
        self.storage = Storage(settings.data_dir)
        self.jobs = JobQueue(settings.workers, settings.max_queue, settings.ttl_seconds, self._expire, "video")
        self.images = JobQueue(
            settings.image_workers, settings.image_workers + settings.max_image_waiting, 1.0, None, "image"
        )

    def _expire(self, job: Job) -> None:
        self.storage.remove(*job.files)

    def close(self) -> None:
        self.jobs.close()
        self.images.close()
        self.storage.close()

    async def save(self, upload: UploadFile) -> Path:
        """Copy an upload into the private folder under a random name (its own name is ignored)."""
        path = self.storage.new_path()

        def copy():
            with open(path, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)

        await run_in_threadpool(copy)
        return path


def _page() -> str:
    return resources.files("facedancer.serve").joinpath("page.html").read_text(encoding="utf-8")


def create_app(swapper, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving `swapper` (a loaded facedancer.swap.FaceSwapper) with `settings`."""
    settings = settings or ServeSettings()
    service = Service(swapper, settings)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(
        title="FaceDancer",
        summary="Face swapping: images answered directly, videos as jobs.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    bearer = HTTPBearer(auto_error=False, description=f"needed when the server has a token (--token or ${TOKEN_ENV})")

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        token = settings.api_token
        if token is None:
            return
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise ServeError(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'")

    api = [Depends(authorised)]

    def job_or_404(job_id: str) -> Job:
        job = service.jobs.get(job_id)
        if job is None:
            raise ServeError(404, f"no job {job_id[:64]!r} (unknown, or expired and deleted)")
        return job

    async def request_of(target, select, identity_strength, anonymize, source, reference):
        """Check the form fields, then save the uploads under random names: (target path, SwapRequest)."""
        if select not in SELECT_MODES:
            raise ServeError(422, f"select must be one of {', '.join(SELECT_MODES)}, got {select[:40]!r}")
        saved: list[Path] = []
        try:
            for upload in [target, *(source or []), *(reference or [])]:
                saved.append(await service.save(upload))
        except BaseException:
            service.storage.remove(*saved)
            raise
        n = 1 + len(source or [])
        return saved[0], SwapRequest(select, identity_strength, anonymize, saved[1:n], saved[n:])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_page())

    @app.get("/healthz", summary="Liveness and queue load")
    async def healthz():
        return {
            "status": "ok",
            "video_jobs_active": service.jobs.active(),
            "video_queue_limit": settings.max_queue,
            "image_requests_active": service.images.active(),
        }

    @app.post(
        "/v1/swap",
        dependencies=api,
        summary="Swap faces in a photo; answers the image in the target's size and format",
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, 413: {}, 415: {}, 422: {}, 503: {}},
    )
    async def swap_image(
        target: Target,
        source: Sources = None,
        reference: References = None,
        select: Select = "all",
        identity_strength: Strength = 1.0,
        anonymize: Anonymize = None,
    ):
        target_path, request = await request_of(target, select, identity_strength, anonymize, source, reference)
        uploads = [target_path, *request.sources, *request.references]

        def work(job: Job):
            image = read_image_upload(target_path, settings, "target")
            swapper = service.engine.prepare(request)
            job.check_cancelled()
            swapped = service.engine.swap_image(swapper, image.pixels)
            return image, encode_image(image, swapped)

        try:
            job = service.images.submit("image", work)
            await _wait(job)
        finally:
            service.storage.remove(*uploads)
        if job.state != DONE:
            raise job_error(job)
        image, body = job.result
        return Response(body, media_type=image.media_type)

    @app.post(
        "/v1/faces",
        dependencies=api,
        summary="Faces found in a photo or in a video's first frame (boxes, largest first), to pick one",
    )
    async def faces(target: Target):
        path = await service.save(target)

        def work(job: Job):
            from facedancer.serve.uploads import is_image

            if is_image(path):
                pixels = read_image_upload(path, settings, "target").pixels
            else:
                from facedancer.video import read_frames

                info = check_video_upload(path, settings)
                pixels = next(iter(read_frames(info, max_frames=1)))
            height, width = pixels.shape[:2]
            return {"width": width, "height": height, "faces": service.engine.faces(pixels)}

        try:
            job = service.images.submit("faces", work)
            await _wait(job)
        finally:
            service.storage.remove(path)
        if job.state != DONE:
            raise job_error(job)
        return job.result

    @app.post(
        "/v1/jobs",
        dependencies=api,
        status_code=202,
        summary="Start swapping faces in a video; answers {id} to poll",
        responses={413: {}, 415: {}, 422: {}, 503: {}},
    )
    async def create_job(
        target: Target,
        source: Sources = None,
        reference: References = None,
        select: Select = "all",
        identity_strength: Strength = 1.0,
        anonymize: Anonymize = None,
    ):
        target_path, request = await request_of(target, select, identity_strength, anonymize, source, reference)
        try:
            info = await run_in_threadpool(check_video_upload, target_path, settings)
            swapper = await run_in_threadpool(service.engine.prepare, request, True)
        except BaseException:
            service.storage.remove(target_path)
            raise
        finally:
            service.storage.remove(*request.sources, *request.references)
        output = service.storage.new_path(".mp4")

        def work(job: Job):
            try:
                return service.engine.swap_video(swapper, target_path, output, job, info.estimated_frames)
            finally:
                service.storage.remove(target_path)

        try:
            job = service.jobs.submit("video", work, files=[target_path, output])
        except QueueFull:
            service.storage.remove(target_path)
            raise
        return JSONResponse(job.describe(), status_code=202)

    @app.get("/v1/jobs/{job_id}", dependencies=api, summary="A job's state, progress (0-1) and error")
    async def get_job(job_id: str):
        return job_or_404(job_id).describe()

    @app.get(
        "/v1/jobs/{job_id}/result",
        dependencies=api,
        summary="The swapped video (every frame, the original's sound)",
        response_class=FileResponse,
        responses={200: {"content": {"video/mp4": {}}}, 404: {}, 409: {}},
    )
    async def job_result(job_id: str):
        job = job_or_404(job_id)
        if job.state != DONE:
            raise ServeError(409, f"job {job.id} is {job.state}; its result exists once the state is done")
        output = job.files[-1]
        return FileResponse(output, media_type="video/mp4", filename=f"facedancer-{job.id}.mp4")

    @app.delete("/v1/jobs/{job_id}", dependencies=api, summary="Cancel a job (queued: at once; running: soon)")
    async def cancel_job(job_id: str):
        job_or_404(job_id)
        job = service.jobs.cancel(job_id)
        if job.state in FINISHED:
            await _wait(job, timeout=0)
        return job.describe()

    return app


def job_error(job: Job) -> ServeError:
    """The error a synchronous request answers when its job did not finish well."""
    if isinstance(job.exception, ServeError):
        return job.exception
    if job.state == "cancelled":
        return ServeError(503, "the request was cancelled (the server is shutting down)")
    return ServeError(500, job.error or "internal error")


async def _wait(job: Job, timeout: float | None = None) -> None:
    """Wait for a job without holding a thread: its done callback wakes this task."""
    if job.wait(0) or timeout == 0:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake(_job):
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    job.add_done_callback(wake)
    await done

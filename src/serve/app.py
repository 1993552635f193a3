"""The FastAPI app: routes, request and response models, limits, the API key and JSON errors.

Every resource a client can make the service hold is bounded before it is held: the key is checked before a body is
read, at most ``max_in_flight`` requests are read or waiting at once, a body is counted as it streams in and cut at
``max_body_bytes``, and the inference queue refuses work (503 with ``Retry-After``) instead of growing. Errors are
always ``{"error": {"code", "message"}}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.metadata
import io
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.predict.io import PredictionWriter, describe_model, read_record
from src.predict.threshold import apply_thresholds
from src.serve.batcher import DeadlineExceeded, MicroBatcher, NotReady, QueueFull

if TYPE_CHECKING:
    from src.predict.engine import Predictor

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # health checks: no key, no limits (a load balancer polls them)
REQUEST_FILE = "<request>"  # an error record's "file"; its "line" is the document's position, from 1
DEADLINE = "newsframe.deadline"  # scope key: when the request must be answered (time.monotonic())
RETRY_AFTER_S = 1
RETRY = {"Retry-After": str(RETRY_AFTER_S)}  # on every 503: when to come back
# One warm-up inference before /readyz says 200: the first call builds sessions and caches (and a stance model's
# prototype embeddings), so no client request pays for it.
WARMUP = [{"id": "warm-up", "text": "Putin met Kim in Moscow on Monday. Analysts in Seoul said the talks went well."}]


@dataclass(frozen=True)
class Limits:
    """What one replica holds at most (each a flag of ``python -m src.serve``)."""

    max_body_bytes: int = 10_000_000
    max_documents: int = 256  # per request
    max_chars: int = 1_000_000  # characters of text per request
    max_in_flight: int = 64  # requests being read, queued or predicted at once; more get 503
    queue_size: int = 32  # requests waiting for the inference thread; more get 503
    batch_size: int = 32  # documents per Predictor call (a larger request runs alone)
    batch_wait_ms: float = 5.0  # how long a batch waits for more requests after its first
    timeout_s: float = 60.0  # from the first byte of a request to its answer; later: 504


# -- request and response models ----------------------------------------------------------------------------------


class Span(BaseModel):
    """A given sentence span (character offsets into ``text``); other fields, e.g. a gold stance, are ignored."""

    model_config = ConfigDict(extra="allow")
    start: StrictInt
    end: StrictInt


class Document(BaseModel):
    """A document as a line of ``scripts/predict.py``'s JSONL input: other fields are ignored, as there."""

    model_config = ConfigDict(extra="allow")
    id: StrictStr | StrictInt | None = Field(None, description="default: <request>:N, N its position from 1")
    text: StrictStr
    sentences: list[Span] | None = Field(None, description="predict on these spans instead of splitting the text")


Probability = Annotated[float, Field(ge=0, le=1, strict=True)]


class AnnotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[Document]
    min_score: Probability | None = Field(
        None, description="drop entities scored under this; null the stance of sentences scored under it"
    )
    flag_below: Probability | None = Field(None, description='keep results scored under this, "low_score": true')


class Entity(BaseModel):
    start: int
    end: int
    text: str
    label: str
    score: float
    low_score: bool | None = None


class Sentence(BaseModel):
    start: int
    end: int
    text: str
    stance: str | None
    scores: dict[str, float]
    low_score: bool | None = None


class RecordError(BaseModel):
    file: str
    line: int | None
    reason: str


class DocumentResult(BaseModel):
    """The record ``scripts/predict.py --format jsonl`` writes for the document (an unusable one: ``error``)."""

    id: str | None
    entities: list[Entity]
    sentences: list[Sentence]
    doc_stance: str | None
    error: RecordError | None = None


class AnnotateResponse(BaseModel):
    documents: list[DocumentResult]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- errors -------------------------------------------------------------------------------------------------------

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}


class ServiceError(HTTPException):
    """An HTTP error with a machine-readable ``code`` for the JSON body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def overloaded(message: str) -> ServiceError:
    return ServiceError(503, "overloaded", message, RETRY)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "documents", 0, "text")`` -> ``documents[0].text``."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "body"


def validation_message(errors: Sequence[dict]) -> str:
    """The first few problems, each as ``field: what is wrong`` (never the input itself: it may be megabytes)."""
    parts = []
    for error in errors[:5]:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            parts.append(f"body: malformed JSON: {detail} at character {error['loc'][-1]}")
            continue
        message = f"{field_path(error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        if tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing":
            message += " (send a JSON object with Content-Type: application/json)"
        parts.append(message)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


# -- the guard: key, in-flight bound, body cap --------------------------------------------------------------------


class ServiceState:
    """What the event loop counts (only touched on the loop's thread)."""

    def __init__(self) -> None:
        self.in_flight = 0


class Guard:
    """Pure ASGI middleware before any route: the API key, at most ``max_in_flight`` requests, and each body read
    into memory only up to ``max_body_bytes`` (counted as it arrives; Content-Length is not trusted) within the
    request's time limit. The route then gets the body as one message."""

    def __init__(self, app: ASGIApp, limits: Limits, state: ServiceState, keys: Sequence[bytes] = ()) -> None:
        self.app, self.limits, self.state, self.keys = app, limits, state, tuple(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.limits.timeout_s
        if self.keys and not self.authorized(scope):
            message = "missing or wrong API key: send Authorization: Bearer KEY or X-API-Key: KEY"
            await error_response(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        if self.state.in_flight >= self.limits.max_in_flight:
            message = f"{self.limits.max_in_flight} requests are in progress (--max-in-flight); retry later"
            await error_response(503, "overloaded", message, RETRY)(scope, receive, send)
            return
        self.state.in_flight += 1
        try:
            scope[DEADLINE] = deadline
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await self.read_body(scope, receive, deadline)
                if body is None:  # the client went away
                    return
                if isinstance(body, JSONResponse):
                    await body(scope, receive, send)
                    return
                receive = replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1

    def authorized(self, scope: Scope) -> bool:
        presented = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    presented.append(token.strip())
            elif name == b"x-api-key":
                presented.append(value.strip())
        ok = False
        for token in presented:
            for key in self.keys:
                ok |= hmac.compare_digest(token, key)  # constant time; every pair compared
        return ok

    async def read_body(self, scope: Scope, receive: Receive, deadline: float) -> bytes | JSONResponse | None:
        """The whole body, or the error response to send (413, 408, 422 for bytes that are not UTF-8), or None when
        the client disconnected. Past the limit the rest is read and dropped (up to the limit again), so the
        client gets to read the 413 instead of a reset connection."""
        limit = self.limits.max_body_bytes
        too_large = error_response(
            413, "payload_too_large", f"the request body is over the limit of {limit} bytes (--max-body-bytes)"
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > 2 * limit:
            return too_large  # announced far over the limit: not worth draining
        chunks, size, more = [], 0, True
        while more:
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), remaining) if remaining > 0 else None
            except TimeoutError:
                message = None
            if message is None:
                return error_response(
                    408, "request_timeout", f"the body did not arrive within {self.limits.timeout_s} s (--timeout-s)"
                )
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > 2 * limit:
                return too_large
            if size <= limit:
                chunks.append(chunk)
        if size > limit:
            return too_large
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            return error_response(
                422, "invalid_request", f"body: not UTF-8: byte 0x{body[err.start]:02x} at byte {err.start}"
            )
        return body


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the body read by ``Guard`` once, then passes on (e.g. a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


# -- the app ------------------------------------------------------------------------------------------------------


def project_version() -> str:
    try:
        return importlib.metadata.version("newsframe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe_models(predictor: Predictor, paths: dict[str, str | None]) -> dict[str, dict]:
    """What ``/v1/models`` says of each loaded model: task, labels, windows, calibration, backend and the sha256 of
    its folder's files (``describe_model``, the fingerprint a ``predict.py`` run records)."""
    from src.model import resolve_model_dir  # transformers takes seconds: the CLI's usage errors come first
    from src.model_folder import METADATA, ModelFolder

    described = {}
    for task, path in paths.items():
        model = predictor.models.get(task)
        if path is None or model is None:
            continue
        folder = Path(resolve_model_dir(path))
        # an old folder without newsframe.json has no calibration
        calibration = ModelFolder.from_dir(folder).calibration if (folder / METADATA).is_file() else None
        described[task] = {
            "task": task,
            "path": path,
            "sha256": describe_model(path)["sha256"],
            "labels": model.labels,
            "max_length": model.max_length,
            "stride": model.stride,
            "context": model.context,
            "calibration": calibration,
            "backend": model.backend,
            "quantize": model.quantize,
        }
    return described


def encode_answer(
    predictions: list[dict], min_score: float | None, flag_below: float | None, none_label: str | None = None
) -> bytes:
    """The response body: each record exactly as ``predict.py --format jsonl`` writes it (the same thresholds and
    the same writer, so the same bytes), joined into ``{"documents": [...]}``."""
    stream = io.StringIO()
    writer = PredictionWriter("jsonl", stream)
    for prediction in predictions:
        writer.write(apply_thresholds(prediction, min_score, flag_below, none_label))
    lines = stream.getvalue().split("\n")[:-1]  # "\n" only: records may hold U+2028 raw
    return ('{"documents":[' + ",".join(lines) + "]}").encode("utf-8")


def document_record(document: Document, position: int) -> dict:
    """The prediction input of one request document, through ``read_record``: the checks ``predict.py`` applies."""
    record: dict[str, Any] = {"id": document.id, "text": document.text}
    if document.sentences is not None:
        record["sentences"] = [span.model_dump() for span in document.sentences]
    return read_record(record, REQUEST_FILE, position)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as the JSON body ``{"error": {"code", "message"}}``: HTTP errors, invalid requests, and failures
    inside the service (logged; the client gets no traceback)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "the request failed inside the service; see its log")


def add_health_routes(app: FastAPI, state: ServiceState, batcher: MicroBatcher) -> None:
    """``/healthz`` (liveness) and ``/readyz`` (readiness, and how busy the replica is); no key needed."""

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process answers (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    async def readyz() -> JSONResponse:
        """200 once the models are loaded and warmed up (readiness); 503 before, after a failed load, or while
        stopping. Also says how busy the replica is."""
        busy = {"in_flight": state.in_flight, "queued": batcher.queue.qsize(), "predicting": batcher.running}
        if batcher.is_ready:
            return JSONResponse({"status": "ready", **busy})
        status = "failed" if batcher.failure else "stopping" if batcher.stopping else "starting"
        message = batcher.failure or f"not ready: {status}"
        body = {"error": {"code": "not_ready", "message": message}, "status": status, **busy}
        return JSONResponse(body, status_code=503, headers=RETRY)


async def answer(
    batcher: MicroBatcher, records: list[dict], finish: Callable[[list[dict]], bytes], deadline: float, timeout_s: float
) -> bytes:
    """The encoded answer of ``records`` from the batcher, or the service error of a full queue (503), a replica
    not ready (503) or a passed deadline (504)."""
    try:
        future = batcher.submit(records, finish, deadline)
        return await asyncio.wait_for(asyncio.wrap_future(future), max(deadline - time.monotonic(), 0))
    except QueueFull as err:
        raise overloaded(f"{err} (--queue-size); retry later") from None
    except NotReady as err:
        raise ServiceError(503, "not_ready", f"not ready: {err}", RETRY) from None
    except (TimeoutError, DeadlineExceeded):  # waited too long, or skipped by the thread past its deadline
        raise ServiceError(504, "timeout", f"no answer within the time limit of {timeout_s} s (--timeout-s)") from None


def make_batcher(predictor_factory: Callable[[], Predictor], limits: Limits, loaded: dict) -> MicroBatcher:
    """The micro-batcher whose thread loads the Predictor (and records its none label in ``loaded``) and runs it."""

    def load() -> Callable[[list[dict]], list[dict]]:
        predictor = predictor_factory()
        loaded["none_label"] = predictor.scheme.none_label
        return lambda records: list(predictor.iter_predict(records))

    return MicroBatcher(load, limits.batch_size, limits.batch_wait_ms / 1000, limits.queue_size, WARMUP)


def check_size(documents: Sequence[Document], limits: Limits) -> None:
    """A request over the document or character limits is refused (422) before it is queued."""
    if len(documents) > limits.max_documents:
        raise ServiceError(
            422,
            "too_many_documents",
            f"documents: {len(documents)} documents, over the limit of {limits.max_documents} (--max-documents)",
        )
    chars = sum(len(document.text) for document in documents)
    if chars > limits.max_chars:
        raise ServiceError(
            422,
            "too_many_characters",
            f"documents[].text: {chars} characters in all, over the limit of {limits.max_chars} (--max-chars)",
        )


def create_app(
    predictor_factory: Callable[[], Predictor],
    limits: Limits | None = None,
    models: dict[str, dict] | None = None,
    api_keys: Sequence[str] = (),
) -> FastAPI:
    """The service app. ``predictor_factory`` runs on the inference thread when the app starts (return an already
    loaded Predictor to load before binding); ``models``: what ``/v1/models`` reports (``describe_models``);
    ``api_keys``: when given, every route but the health checks needs one of them."""
    limits = limits or Limits()
    state = ServiceState()
    version = project_version()

    loaded: dict[str, str | None] = {}  # the stance model's none label, for the thresholds' document stance
    batcher = make_batcher(predictor_factory, limits, loaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop, limits.timeout_s + 5)  # requests in flight were answered by now

    app = FastAPI(
        title="newsframe",
        version=version,
        summary="Entities and sentence stances of news articles",
        lifespan=lifespan,
    )
    errors = {code: {"model": ErrorResponse, "description": CODES[code]} for code in (401, 413, 422, 503, 504)}
    app.add_middleware(Guard, limits=limits, state=state, keys=[key.encode("utf-8") for key in api_keys])

    add_error_handlers(app)

    add_health_routes(app, state, batcher)

    @app.get("/v1/models", responses={401: errors[401]})
    async def list_models() -> dict:
        """The models every request is answered with (fixed at start), their fingerprints, and the limits."""
        return {"version": version, "models": models or {}, "limits": asdict(limits)}

    @app.post("/v1/annotate", response_model=AnnotateResponse, responses=errors)
    async def annotate(request: Request, body: AnnotateRequest) -> Response:
        """Entities, sentence stances and the document stance of each document: per document, the record that
        ``scripts/predict.py --format jsonl`` writes for the same JSONL line with the same models (a document
        that cannot be predicted gets its ``error``, file ``<request>``, line its position from 1)."""
        documents = body.documents
        check_size(documents, limits)
        if not documents:
            return Response(b'{"documents":[]}', media_type="application/json")
        records = [document_record(document, i) for i, document in enumerate(documents, start=1)]
        deadline = request.scope.get(DEADLINE) or time.monotonic() + limits.timeout_s

        def finish(predictions: list[dict]) -> bytes:  # runs once the predictions exist: load() has set the label
            return encode_answer(predictions, body.min_score, body.flag_below, loaded.get("none_label"))

        content = await answer(batcher, records, finish, deadline, limits.timeout_s)
        return Response(content, media_type="application/json")

    return app

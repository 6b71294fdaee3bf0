"""Training routes: dataset versions and their JSONL export, fine-tuning jobs, provenance,
the semantic dictionary, the field catalog, model predictions and their outcomes.

Each route is one call into the module that owns the SQL, in the caller's scope.
Invariants:

* Writes run through ``run_write`` (Idempotency-Key record in the write's transaction).
  Starting a fine-tuning job does too, so a retried start never creates a second remote
  job; if the provider fails, nothing is recorded and the key stays unused. Syncing a job
  is a poll (idempotent by nature) and keeps the library's behaviour: a failed poll is
  recorded on the job (``sync_error``) and answered with a 502.
* The export streams the same lines as ``learnloop export`` writes (same validation, same
  skipped examples), from a server-side cursor, without a temporary file. Every error that
  can be known before the first byte (unknown dataset, format for the wrong kind, nothing
  to export) is a 4xx problem; the stream starts only once the first line is ready.
* Catalog introspection is deliberately absent: it connects to a URL given by the caller,
  which over HTTP would let any key holder make the server open connections anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ...dictionary import catalog as _cat
from ...dictionary import terms as _terms
from ...dictionary.models import CatalogField, Term, TermMatch
from ...errors import ConfigurationError, InvalidInput
from ...predictions import registry as _reg
from ...predictions.models import ModelVersion, Prediction, Report
from ...predictions.registry import PredictionIn
from ...training import datasets as _ds
from ...training import export as _export
from ...training import finetune as _ft
from ...training.models import Dataset, GenerationTraining, Job, JobEvent, TrainedOn
from ..deps import Admin, Ctx, Read, Write
from ..idempotency import request_hash, run_write
from ._shared import IdemKey, Limit, Page, page

router = APIRouter(prefix="/v1")
SmallOffset = Annotated[int, Query(ge=0, le=100_000, description="Rows to skip.")]
EXPORT_CHUNK = 256 * 1024  # bytes per streamed chunk: few thread hops, flat memory


def _rhash(request: Request, ctx: Ctx, body: Any) -> str:
    return request_hash(request.method, request.url.path, ctx.scope.project, body)


# -- datasets ------------------------------------------------------------------------------
class NewDataset(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "good-answers", "filter": {"verdict": "POSITIVE", "kind": "chat"},
         "options": {"scrub_pii": True, "validation": 0.1}}]})
    name: str = Field(min_length=1, max_length=200)
    filter: dict[str, Any] = Field(default_factory=dict, description="Curation filter (docs/training.md).")
    kind: Literal["sft", "preference"] = "sft"
    options: dict[str, Any] = Field(default_factory=dict, description="dedupe, scrub_pii, validation, seed, system.")
    created_by: str | None = Field(None, max_length=500)


@router.post("/datasets", status_code=201, response_model=Dataset, tags=["training"],
             summary="Curate a new dataset version from the ledger (or get the identical latest one)")
def create_dataset(request: Request, body: NewDataset, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: _ds.create(conn, ctx.scope, body.name, body.filter, kind=body.kind,
                                             options=body.options, created_by=body.created_by))


@router.get("/datasets", response_model=Page[Dataset], tags=["training"], summary="Dataset versions of the project")
def list_datasets(ctx: Read, name: Annotated[str | None, Query(max_length=200)] = None,
                  limit: Limit = 50, offset: SmallOffset = 0) -> Any:
    return page(ctx.client.training.datasets(name)[offset:offset + limit], limit, offset)


@router.get("/datasets/{dataset}", response_model=Dataset, tags=["training"],
            summary="One dataset version, by id, name (latest) or name@version")
def get_dataset(dataset: str, ctx: Read) -> Any:
    return ctx.client.training.dataset(dataset)


@router.get("/datasets/{dataset}/export", tags=["training"], response_class=StreamingResponse,
            summary="Download a dataset version as JSONL (streamed)",
            responses={200: {"content": {"application/jsonl": {}},
                             "description": "One JSON object per line, in the dataset's order."}})
def export_dataset(
    dataset: str,
    ctx: Read,
    format: Annotated[Literal["chat", "completion", "preference", "openai-preference"], Query()] = "chat",
    split: Annotated[Literal["train", "validation"] | None, Query()] = None,
    max_tokens: Annotated[int, Query(ge=1, le=10_000_000)] = _export.DEFAULT_MAX_TOKENS,
) -> StreamingResponse:
    stack = contextlib.ExitStack()
    try:
        conn = stack.enter_context(ctx.client.db.connection())
        ds = _ds.get(conn, ctx.scope, dataset)
        stack.enter_context(conn.transaction())  # the server-side cursor lives in it
        lines = _export_lines(_ds.items(conn, ctx.scope, ds.id, split), format, ds.kind, max_tokens)
        first = next(lines, None)  # format/kind errors surface here, before any byte is sent
        if first is None:
            what = f"the {split} split of " if split else ""
            raise InvalidInput(f"{what}dataset {ds.name}@{ds.version} has no exportable examples",
                               field="split" if split else "dataset")
    except BaseException:
        stack.close()
        raise

    def body() -> Iterator[bytes]:
        with stack:
            yield b""  # primed below: from here on, closing the generator releases the connection
            buf = [first]
            size = len(first)
            for line in lines:
                buf.append(line)
                size += len(line)
                if size >= EXPORT_CHUNK:
                    yield b"".join(buf)
                    buf, size = [], 0
            if buf:
                yield b"".join(buf)

    stream = body()
    next(stream)  # enter the generator's `with`, so even a never-read response closes the stack when dropped
    name = f"{ds.name}-{ds.version}-{format}{'-' + split if split else ''}.jsonl"
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
    return StreamingResponse(stream, media_type="application/jsonl", headers={
        "Content-Disposition": f'attachment; filename="{safe}"',
        "X-Learnloop-Dataset": str(ds.id), "X-Learnloop-Content-Hash": ds.content_hash})


def _export_lines(items: Iterator[dict[str, Any]], fmt: str, kind: str, max_tokens: int) -> Iterator[bytes]:
    """The lines ``training.export.export`` writes, as bytes; rejected examples skipped."""
    for item in items:
        obj, msgs = _export.record(fmt, kind, item["example"])
        if fmt in ("chat", "openai-preference") and _export.validate_chat(msgs, max_tokens):
            continue
        yield (_export.dumps_line(obj) + "\n").encode()


# -- fine-tuning jobs ----------------------------------------------------------------------
class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"dataset": "good-answers@2", "base_model": "gpt-4o-mini-2024-07-18", "hyperparameters": {"n_epochs": 3}}]})
    dataset: str = Field(min_length=1, max_length=300, description="Dataset id, name or name@version.")
    base_model: str = Field(min_length=1, max_length=200)
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class FineTuningNotConfigured(ConfigurationError):
    # The server lacks a provider key: a state of this deployment, not a bug (500) or bad input.
    status = 503
    code = "finetune_not_configured"


def _provider(request: Request) -> Any:
    try:
        return _ft.OpenAIFineTuning.from_settings(request.app.state.settings)
    except ConfigurationError as exc:
        raise FineTuningNotConfigured(f"fine-tuning is not available on this server: {exc.message}") from None


@router.get("/training/jobs", response_model=Page[Job], tags=["training"], summary="Fine-tuning jobs, newest first")
def list_jobs(ctx: Read, status: Annotated[Literal["pending", "running", "succeeded", "failed", "cancelled"] | None,
                                           Query()] = None,
              limit: Limit = 50, offset: SmallOffset = 0) -> Any:
    return page(ctx.client.training.jobs(status=status, limit=offset + limit)[offset:], limit, offset)


@router.get("/training/jobs/{job_id}", response_model=Job, tags=["training"], summary="One fine-tuning job")
def get_job(job_id: str, ctx: Read) -> Any:
    return ctx.client.training.job(job_id)


@router.get("/training/jobs/{job_id}/events", response_model=list[JobEvent], tags=["training"],
            summary="Provider events of a job (as last synced)")
def job_events(job_id: str, ctx: Read) -> Any:
    return ctx.client.training.job_events(job_id)


@router.post("/training/jobs", status_code=201, response_model=Job, tags=["training"],
             summary="Start a fine-tuning job (export, upload, create at the provider)")
def start_job(request: Request, body: NewJob, ctx: Admin, idem: IdemKey = None) -> JSONResponse:
    with ctx.client.db.connection() as conn:
        _ds.get(conn, ctx.scope, body.dataset)  # 404 before any provider is contacted
    prov = _provider(request)
    actor = f"api-key:{ctx.principal.key_id}"

    def write(conn: Any) -> Any:
        return _ft.start(conn, ctx.scope, prov, body.dataset, base_model=body.base_model,
                         hyperparameters=body.hyperparameters, suffix=body.suffix, seed=body.seed, actor=actor)

    return run_write(ctx, idem, _rhash(request, ctx, body), write)


@router.post("/training/jobs/{job_id}/sync", response_model=Job, tags=["training"],
             summary="Poll the provider once: status, resulting model, events")
def sync_job(request: Request, job_id: str, ctx: Admin) -> Any:
    ctx.client.training.job(job_id)  # 404 before any provider is contacted
    return ctx.client.training.sync(job_id, provider=_provider(request))


@router.get("/training/models/{model}/generations", response_model=list[TrainedOn], tags=["training"],
            summary="Provenance: the generations a fine-tuned model was trained on")
def trained_on(model: str, ctx: Read) -> Any:
    return ctx.client.training.trained_on(model)


@router.get("/generations/{generation_id}/training", response_model=GenerationTraining, tags=["training"],
            summary="Provenance: datasets and models this generation went into")
def trace(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.training.trace(generation_id)


# -- dictionary ----------------------------------------------------------------------------
class NewTerm(_terms.TermIn):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"word": "cédula", "table_name": "clientes", "field_name": "cedula", "synonyms": ["documento", "DNI"],
         "definition": "national identity number of the client"}]})
    because_of: UUID | None = Field(None, description="The feedback that prompted this term.")
    note: str | None = Field(None, max_length=10_000)
    by: str | None = Field(None, max_length=500)


@router.post("/dictionary/terms", status_code=201, response_model=Term, tags=["dictionary"],
             summary="Add a word -> table.field term")
def add_term(request: Request, body: NewTerm, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    embedder = ctx.client.dictionary.embedder
    term = body.model_dump(exclude={"because_of", "note", "by"})
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: _terms.add(conn, ctx.scope, embedder, term, because_of=body.because_of,
                                             note=body.note, by=body.by),
                     model=Term)


@router.get("/dictionary/terms", response_model=Page[Term], tags=["dictionary"],
            summary="Terms of the project (by word)")
def list_terms(ctx: Read, category: Annotated[str | None, Query(max_length=200)] = None,
               include_inactive: bool = False, limit: Limit = 100, offset: SmallOffset = 0) -> Any:
    rows = ctx.client.dictionary.terms(category=category, include_inactive=include_inactive)
    return page(rows[offset:offset + limit], limit, offset)


@router.get("/dictionary/lookup", response_model=list[TermMatch], tags=["dictionary"],
            summary="Which table.field a phrase means: exact, synonym, then semantic")
def lookup(ctx: Read, phrase: Annotated[str, Query(min_length=1, max_length=2000)],
           k: Annotated[int, Query(ge=1, le=100)] = 5,
           min_score: Annotated[float, Query(ge=0, le=1)] = 0.3) -> Any:
    return ctx.client.dictionary.lookup(phrase, k=k, min_score=min_score)


# -- catalog -------------------------------------------------------------------------------
class FieldDescription(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"definition": "loan state", "allowed_values": ["ACTIVE", "PAID", "DEFAULTED"]}]})
    definition: str | None = Field(None, max_length=10_000)
    notes: str | None = Field(None, max_length=10_000)
    allowed_values: list[Any] | None = Field(None, max_length=10_000)
    example_values: list[Any] | None = Field(None, max_length=10_000)
    data_type: str | None = Field(None, max_length=200)
    create: bool = Field(False, description="Create the entry if introspection never saw the field.")
    because_of: UUID | None = None
    note: str | None = Field(None, max_length=10_000)
    by: str | None = Field(None, max_length=500)


@router.get("/catalog/fields", response_model=Page[CatalogField], tags=["dictionary"],
            summary="Catalog of the app database's fields")
def list_fields(ctx: Read, table: Annotated[str | None, Query(max_length=200)] = None,
                schema: Annotated[str | None, Query(max_length=200)] = None,
                include_missing: bool = False, limit: Limit = 100, offset: SmallOffset = 0) -> Any:
    rows = ctx.client.dictionary.fields(table=table, schema=schema, include_missing=include_missing)
    return page(rows[offset:offset + limit], limit, offset)


@router.get("/catalog/fields/{schema_name}/{table_name}/{field_name}", response_model=CatalogField,
            tags=["dictionary"], summary="One catalog field")
def get_field(schema_name: str, table_name: str, field_name: str, ctx: Read) -> Any:
    return ctx.client.dictionary.field(table_name, field_name, schema=schema_name)


@router.put("/catalog/fields/{schema_name}/{table_name}/{field_name}", response_model=CatalogField,
            tags=["dictionary"], summary="Describe a field (definition, notes, allowed/example values)")
def describe_field(request: Request, schema_name: str, table_name: str, field_name: str, body: FieldDescription,
                   ctx: Write, idem: IdemKey = None) -> JSONResponse:
    changes = body.model_dump(exclude_unset=True, exclude={"create", "because_of", "note", "by"})
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: _cat.describe(conn, ctx.scope, table_name, field_name, schema=schema_name,
                                                create=body.create, because_of=body.because_of, note=body.note,
                                                by=body.by, **changes),
                     status=200, model=CatalogField)


# -- predictions ---------------------------------------------------------------------------
class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"outcome": True}]})
    outcome: bool = Field(description="Did the predicted (positive) event happen?")
    note: str | None = Field(None, max_length=10_000)
    at: datetime | None = None
    replace: bool = Field(False, description="Change an outcome already recorded.")


@router.post("/predictions", status_code=201, response_model=Prediction, tags=["predictions"],
             summary="Register a model's prediction")
def log_prediction(request: Request, body: PredictionIn, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    def write(conn: Any) -> dict[str, Any]:
        (pid,) = _reg.log(conn, ctx.scope, [body])
        return _reg.get(conn, ctx.scope, pid)

    return run_write(ctx, idem, _rhash(request, ctx, body), write, model=Prediction)


@router.get("/predictions", response_model=list[Prediction], tags=["predictions"],
            summary="Find predictions by subject (link=loan:456), model and version, newest first")
def find_predictions(
    ctx: Read,
    link: Annotated[list[str], Query(description="Subject TYPE:ID, repeatable")] = [],  # noqa: B006
    model_name: Annotated[str | None, Query(max_length=200)] = None,
    model_version: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
) -> Any:
    subject: dict[str, str] = {}
    for item in link:
        k, sep, v = item.partition(":")
        if not sep or not k or not v:
            raise InvalidInput(f"link must be TYPE:ID, got {item!r}", field="link")
        subject[k] = v
    return ctx.client.predictions.find(subject=subject or None, model_name=model_name, model_version=model_version,
                                       limit=limit)


@router.get("/predictions/versions", response_model=list[ModelVersion], tags=["predictions"],
            summary="Model versions with prediction and outcome counts")
def versions(ctx: Read, model_name: Annotated[str | None, Query(max_length=200)] = None) -> Any:
    return ctx.client.predictions.versions(model_name)


@router.get("/predictions/models/{model_name}/versions/{model_version}/report", response_model=Report,
            tags=["predictions"], summary="Quality of a model version against real outcomes")
def report(model_name: str, model_version: str, ctx: Read,
           threshold: Annotated[float, Query(ge=0, le=1)] = 0.5,
           bins: Annotated[int, Query(ge=2, le=100)] = 10) -> Any:
    return ctx.client.predictions.report(model_name, model_version, threshold=threshold, bins=bins)


@router.get("/predictions/{prediction_id}", response_model=Prediction, tags=["predictions"],
            summary="One prediction, by id or external id")
def get_prediction(prediction_id: str, ctx: Read) -> Any:
    return ctx.client.predictions.get(prediction_id)


@router.post("/predictions/{prediction_id}/outcome", response_model=Prediction, tags=["predictions"],
             summary="Record what really happened (once, unless replace)")
def record_outcome(request: Request, prediction_id: str, body: Outcome, ctx: Write,
                   idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: _reg.record_outcome(conn, ctx.scope, prediction_id, body.outcome, note=body.note,
                                                      at=body.at, replace=body.replace),
                     status=200, model=Prediction)

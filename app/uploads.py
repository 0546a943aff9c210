"""Uploads: multipart bodies streamed to disk (sha256 and size limit while streaming), then validated as datasets.

Starlette's own form parsing would spool a whole body before a handler sees it; here every file part goes straight
to a temporary file under ARTIFACT_DIR/tmp/, and the request is refused with 413 the moment a file passes
MAX_UPLOAD_MB (TooLarge). A validated file is moved to ARTIFACT_DIR/datasets/<id>/. Whatever the outcome of a
request that
fails, nothing stays behind: temporary files are always removed and stored directories are removed on error.
"""
from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db.models import Dataset, new_id
from app.errors import ServiceError, TooLarge, Unprocessable, UnsupportedMediaType
from model_core.data import DataError, read_table
from model_core.data_checks import table_warnings

MAX_TEXT_FIELD_BYTES = 64 * 1024
COLUMN_FIELDS = ("label_column", "text_column", "text_pair_column")
READ_FIELDS = (*COLUMN_FIELDS, "label_delimiter", "allow_no_label")  # the form fields that say how a file is read
READ_FIELDS_SCHEMA = {  # their OpenAPI description
    **{column: {"type": "string", "description": "Column name; default per the README."} for column in COLUMN_FIELDS},
    "label_delimiter": {"type": "string", "maxLength": Dataset.label_delimiter.type.length,
                        "description": "Multi-label data: each label cell holds one or more labels separated by "
                        "this (e.g. `,`); each is stripped. Absent: single-label."},
    "allow_no_label": {"type": "boolean", "default": False,
                       "description": "Multi-label data: an empty label cell is a row with no label (else a 422)."},
}


@dataclass
class ReceivedFile:
    field: str
    filename: str
    path: Path  # temporary, under ARTIFACT_DIR/tmp/
    sha256: str
    size_bytes: int


@dataclass
class ReceivedForm:
    """A parsed multipart body; a context manager that removes what a failed request left on disk."""

    fields: dict[str, str]
    files: dict[str, ReceivedFile]
    stored_dirs: list[Path] = field(default_factory=list)

    def __enter__(self) -> ReceivedForm:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for received in self.files.values():
            received.path.unlink(missing_ok=True)
        if exc_type is not None:
            for directory in self.stored_dirs:
                shutil.rmtree(directory, ignore_errors=True)


def _format_of(filename: str) -> str:
    return "csv" if filename.lower().endswith(".csv") else "tsv"


class _FormReceiver:
    """python-multipart callbacks: file parts to disk with their sha256, text parts to memory (bounded)."""

    def __init__(self, file_fields: set[str], text_fields: set[str], tmp_dir: Path, max_file_bytes: int):
        self.file_fields, self.text_fields = file_fields, text_fields
        self.tmp_dir, self.max_file_bytes = tmp_dir, max_file_bytes
        self.fields: dict[str, str] = {}
        self.files: dict[str, ReceivedFile] = {}
        self._header_field = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._text = bytearray()
        self._file = None
        self._hash = None
        self._size = 0
        self._path: Path | None = None

    def in_file_part(self) -> bool:
        return self._file is not None

    def temporary_paths(self) -> list[Path]:
        return [received.path for received in self.files.values()] + ([self._path] if self._path else [])

    def callbacks(self) -> dict:
        return dict(on_part_begin=self.on_part_begin, on_header_field=self.on_header_field,
                    on_header_value=self.on_header_value, on_headers_finished=self.on_headers_finished,
                    on_part_data=self.on_part_data, on_part_end=self.on_part_end)

    def on_part_begin(self) -> None:
        self._headers, self._header_field = {}, b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field = data[start:end].lower()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_field] = self._headers.get(self._header_field, b"") + data[start:end]

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = filename.decode("utf-8", "replace") if filename is not None else None
        expected = sorted(self.file_fields | self.text_fields)
        if self._name not in expected:
            raise Unprocessable(f"unknown form field {self._name!r}; expected one of {expected}")
        if self._name in self.fields or self._name in self.files:
            raise Unprocessable(f"form field {self._name!r} was sent twice")
        if self._name in self.file_fields:
            if self._filename is None:
                raise Unprocessable(f"form field {self._name!r} must be a file upload")
            self._path = self.tmp_dir / f"{uuid.uuid4().hex}.{_format_of(self._filename)}"
            self._file = self._path.open("wb")
            self._hash, self._size = hashlib.sha256(), 0
        else:
            self._text = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            self._text += chunk
            if len(self._text) > MAX_TEXT_FIELD_BYTES:
                raise Unprocessable(f"form field {self._name!r} is longer than {MAX_TEXT_FIELD_BYTES} bytes")
            return
        self._size += len(chunk)
        if self._size > self.max_file_bytes:
            raise TooLarge(f"{self._filename}: larger than MAX_UPLOAD_MB "
                                     f"({self.max_file_bytes / 2**20:g} MiB)")
        self._hash.update(chunk)
        self._file.write(chunk)

    def on_part_end(self) -> None:
        if self._file is None:
            try:
                self.fields[self._name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise Unprocessable(f"form field {self._name!r} is not UTF-8") from None
            return
        self._file.close()
        self.files[self._name] = ReceivedFile(self._name, self._filename, self._path, self._hash.hexdigest(),
                                              self._size)
        self._file, self._path = None, None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_form(request: Request, *, file_fields: set[str], text_fields: set[str], artifact_dir: Path,
                       max_upload_mb: float) -> ReceivedForm:
    """Streams a multipart/form-data body: files to temporary files (TooLarge past the limit), text fields to
    strings."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("send multipart/form-data (e.g. curl -F file=@train.tsv)")
    tmp_dir = artifact_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    receiver = _FormReceiver(file_fields, text_fields, tmp_dir, int(max_upload_mb * 2**20))
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.in_file_part():
            raise Unprocessable("the multipart body ended in the middle of a file")
    except BaseException as error:
        receiver.close()
        for path in receiver.temporary_paths():
            path.unlink(missing_ok=True)
        if isinstance(error, ServiceError):
            raise
        if isinstance(error, Exception):
            raise Unprocessable(f"malformed multipart body: {error}") from None
        raise
    return ReceivedForm(receiver.fields, receiver.files)


@dataclass
class ColumnChoice:
    """How an uploaded file is read: its columns (None: the default) and, for multi-label data, its label cells."""

    label_column: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_delimiter: str | None = None  # set: multi-label
    allow_no_label: bool = False

    @classmethod
    def from_form(cls, fields: dict[str, str]) -> ColumnChoice:
        delimiter = fields.get("label_delimiter") or None  # not stripped: a space may be the delimiter
        longest = Dataset.label_delimiter.type.length
        if delimiter is not None and len(delimiter) > longest:
            raise Unprocessable(f"label_delimiter {delimiter!r} is longer than {longest} characters")
        allow_no_label = fields.get("allow_no_label", "false").strip().lower()
        if allow_no_label not in ("true", "false"):
            raise Unprocessable(f"allow_no_label must be true or false, got {fields['allow_no_label']!r}")
        return cls(**{name: fields[name].strip() or None for name in COLUMN_FIELDS if name in fields},
                   label_delimiter=delimiter, allow_no_label=allow_no_label == "true")


async def store_dataset(session: Session, form: ReceivedForm, file_field: str, columns: ColumnChoice,
                        name: str | None, artifact_dir: Path) -> Dataset:
    """Validates an uploaded file with read_table (Unprocessable naming the line and reason) and keeps it as a dataset,
    with the warnings of the data checks (model_core.data_checks), which refuse nothing.

    The row is added to `session` (the caller commits); the file moves to ARTIFACT_DIR/datasets/<id>/.
    """
    received = form.files.get(file_field)
    if received is None:
        raise Unprocessable(f"form field {file_field!r} (the data file) is missing")
    try:
        table = await run_in_threadpool(read_table, received.path, label_column=columns.label_column,
                                        text_column=columns.text_column, text_pair_column=columns.text_pair_column,
                                        label_delimiter=columns.label_delimiter,
                                        allow_no_label=columns.allow_no_label)
    except DataError as error:
        raise Unprocessable(f"{received.filename}: {error}") from None
    warnings = await run_in_threadpool(table_warnings, table.examples)
    dataset_id = new_id()
    directory = artifact_dir / "datasets" / dataset_id
    directory.mkdir(parents=True)
    form.stored_dirs.append(directory)
    path = directory / f"data.{_format_of(received.filename)}"  # the original name is in `filename`
    shutil.move(received.path, path)
    dataset = Dataset(
        id=dataset_id, name=name or Path(received.filename).stem or dataset_id, filename=received.filename,
        format=_format_of(received.filename), n_rows=len(table.examples), labels=table.labels,
        label_column=table.label_column, text_column=table.text_column, text_pair_column=table.text_pair_column,
        label_delimiter=table.label_delimiter, allow_no_label=table.allow_no_label,
        sha256=received.sha256, size_bytes=received.size_bytes, path=str(path.resolve()), warnings=warnings,
    )
    session.add(dataset)
    session.flush()
    return dataset

"""A small ``multipart/form-data`` reader for ``POST /upload/image``.

Starlette's own form parser needs the ``python-multipart`` package, which the project does not
depend on; uploads here are small, so the body is split in memory with the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value


@dataclass(frozen=True)
class UploadedFile:
    """A file field: the client's file name and the bytes."""

    filename: str
    data: bytes


class FormError(ValueError):
    """The body is not well-formed ``multipart/form-data``."""


def parse_form(content_type: str, body: bytes) -> dict[str, str | UploadedFile]:
    """Fields of a multipart body: text fields as ``str``, file fields as :class:`UploadedFile`."""
    boundary = _header_param(content_type, "boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise FormError("expected multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str | UploadedFile] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise FormError("part without headers")
        content = content.removesuffix(b"\r\n")
        disposition = _part_header(head, "content-disposition")
        name = _header_param(disposition, "name")
        if name is None:
            continue
        filename = _header_param(disposition, "filename")
        if filename is None:
            fields[name] = content.decode("utf-8", errors="replace")
        else:
            fields[name] = UploadedFile(filename, content)
    return fields


def _part_header(head: bytes, wanted: str) -> str:
    for line in head.decode("utf-8", errors="replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == wanted:
            return value.strip()
    return ""


def _header_param(header: str, param: str) -> str | None:
    """A parameter of a header value (``boundary``, ``name``, ``filename``), unquoted."""
    message = Message()
    message["x-header"] = header
    value = message.get_param(param, header="x-header")
    if value is None:
        return None
    return collapse_rfc2231_value(value)

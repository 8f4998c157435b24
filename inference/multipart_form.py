"""multipart/form-data bodies, read with python-multipart's streaming parser.

Why not Werkzeug's `request.files`: Werkzeug compiles two regular expressions for every new
boundary, ~0.25 ms, and browsers and curl send a new boundary with every request; that was more
than reading the rest of the form. python-multipart (the parser Starlette and FastAPI use) looks
for the boundary without compiling anything per body: ~10 µs for a 28×28 PNG's form, whatever
its boundary (docs/benchmarks.md, "Levers").

A prediction's form is small (at most BATCH_MAX_IMAGES images, each under MAX_UPLOAD_BYTES, the
whole body under MAX_CONTENT_LENGTH), so every part is kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

READ_CHUNK_BYTES = 64 * 1024


@dataclass
class Part:
    """One part of the form: its field name, its file name (None for a plain field), its bytes."""

    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def read_parts(stream: BinaryIO, boundary: str | None, max_parts: int) -> list[Part]:
    """Every part of the body in `stream`, in order; a malformed body is a 400."""
    if not boundary:
        raise ApiError(400, "invalid_multipart",
                       "multipart/form-data needs a boundary in its Content-Type.")
    parts: list[Part] = []
    header_name, header_value = bytearray(), bytearray()

    def on_part_begin() -> None:
        if len(parts) == max_parts:
            raise ApiError(400, "too_many_parts",
                           f"A form may hold at most {max_parts} parts.")
        parts.append(Part())

    def on_header_end() -> None:
        if header_name.strip().lower() == b"content-disposition":
            _, options = parse_options_header(bytes(header_value))
            parts[-1].name = options.get(b"name", b"").decode("utf-8", errors="replace")
            filename = options.get(b"filename")
            parts[-1].filename = None if filename is None else filename.decode(
                "utf-8", errors="replace")
        header_name.clear()
        header_value.clear()

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": lambda data, start, end: header_name.extend(data[start:end]),
        "on_header_value": lambda data, start, end: header_value.extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_part_data": lambda data, start, end: parts[-1].data.extend(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        while chunk := stream.read(READ_CHUNK_BYTES):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "invalid_multipart",
                       f"The multipart/form-data body can't be read: {exc}") from None
    return parts

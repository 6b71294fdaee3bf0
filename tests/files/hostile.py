"""Hostile files made at test time, so the repository holds no bombs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

HERE = Path(__file__).parent


def docx(paragraphs: list[str], title: str | None = None) -> bytes:
    """A real DOCX written by python-docx."""
    import docx as python_docx

    d = python_docx.Document()
    if title:
        d.core_properties.title = title
    for p in paragraphs:
        d.add_paragraph(p)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _rewrite(data: bytes, name: str, content: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, content if info.filename == name else src.read(info.filename))
    return out.getvalue()


def docx_with_xxe(secret_path: str) -> bytes:
    """A DOCX whose document.xml declares an external entity pointing at a local file."""
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file://{secret_path}">]>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&xxe;</w:t></w:r></w:p></w:body></w:document>"
    ).encode()
    return _rewrite(docx(["placeholder"]), "word/document.xml", body)


def zip_bomb(uncompressed_mb: int = 60) -> bytes:
    """A ZIP (to be named .docx) whose document.xml inflates ~1000:1."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(uncompressed_mb):
                f.write(chunk)
    return out.getvalue()


def truncated_pdf(real: bytes) -> bytes:
    return real[: len(real) // 5]


def encrypted_pdf(text_source: bytes, password: str = "s3cret") -> bytes:
    """A real PDF re-written with AES-256 and a user password."""
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(io.BytesIO(text_source)))
    w.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()

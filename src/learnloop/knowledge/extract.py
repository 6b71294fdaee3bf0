"""Text extraction from untrusted files, run in a child process with hard limits.

The parent (``run``) starts ``python -I extract.py`` as a fresh interpreter, writes one
JSON header line plus the file bytes to its stdin and reads one JSON answer from its
stdout. The child sets RLIMIT_CPU and RLIMIT_AS on itself *before* touching the bytes,
and the parent kills it at the wall-clock deadline, so a hostile file (decompression
bomb, parser loop, deep nesting) can cost at most those limits: never a hang, never the
parent's memory. This file imports only the standard library at module level so the child
starts in ~0.1 s; parsers are imported after the limits are in place.

Every failure is a ``reason`` sentence meant for ``documents.error``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

KINDS = ("pdf", "docx", "txt", "md", "html")
MAX_PDF_PAGES = 5000
MAX_ZIP_ENTRIES = 5000
MAX_ZIP_UNCOMPRESSED = 200 * 1024 * 1024
MAX_ZIP_RATIO = 200  # deflate rarely exceeds ~20:1 on real XML; bombs reach 1000:1


class Refused(Exception):
    """The file cannot be turned into text; the message is the reason shown to the user."""


@dataclass
class Extracted:
    text: str
    title: str | None = None
    pages: int | None = None


@dataclass
class Limits:
    timeout: float = 60.0
    cpu_seconds: int = 30
    memory_mb: int = 1024
    max_chars: int = 5_000_000


# -- parent side -------------------------------------------------------------------------

def run(data: bytes, kind: str, limits: Limits) -> Extracted:
    """Extract in a sandboxed child; raise Refused(reason) on any failure.

    Text that is already Unicode (UTF-8, or UTF-16/32 told by a BOM or its zero bytes) is
    decoded here: a codec over bytes whose size was capped before they were read runs no
    parser, and a fresh interpreter per file cost ~45 ms of CPU, more than embedding a short
    file. Everything that needs a parser or an encoding guess still goes to the child."""
    if kind in ("txt", "md"):
        inline = _text_file(data, kind, guess=False)
        if inline is not None:
            return _capped(inline, limits.max_chars)
    header = json.dumps({"kind": kind, "cpu": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                         "max_chars": limits.max_chars}).encode() + b"\n"
    proc = subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # so a kill reaches anything the parser might spawn
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
    )
    try:
        out, err = proc.communicate(header + data, timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        raise Refused(f"parsing took longer than {limits.timeout:g} s (wall clock) and was stopped") from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not out:
        raise Refused(f"parsing used more than {limits.cpu_seconds} s of CPU and was stopped")
    try:
        answer = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        last = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1][:200]
        if "MemoryError" in last or proc.returncode in (-signal.SIGSEGV, -signal.SIGABRT):
            raise Refused(f"parsing exceeded the {limits.memory_mb} MB memory limit") from None
        raise Refused(f"the parser crashed (exit code {proc.returncode}): {last}") from None
    if not answer.get("ok"):
        raise Refused(str(answer.get("reason") or "unknown parser failure"))
    return Extracted(text=answer["text"], title=answer.get("title"), pages=answer.get("pages"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


# -- child side --------------------------------------------------------------------------

def _child() -> None:
    import resource

    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    cpu = int(header["cpu"])
    mem = int(header["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    data = stdin.read()
    sys.setrecursionlimit(5000)
    try:
        result = _extract(data, header["kind"], int(header["max_chars"]))
        answer: dict[str, Any] = {"ok": True, "text": result.text, "title": result.title, "pages": result.pages}
    except Refused as exc:
        answer = {"ok": False, "reason": str(exc)}
    except MemoryError:
        answer = {"ok": False, "reason": f"parsing exceeded the {header['memory_mb']} MB memory limit"}
    except ImportError as exc:
        if "failed to map segment" not in str(exc) and "Cannot allocate memory" not in str(exc):
            raise
        answer = {"ok": False, "reason": f"parsing exceeded the {header['memory_mb']} MB memory limit"}
    except RecursionError:
        answer = {"ok": False, "reason": "the file is nested too deeply to parse"}
    except Exception as exc:  # a parser bug on a malformed file is a failed document, not a crash
        answer = {"ok": False, "reason": f"could not parse the {header['kind']} file: {type(exc).__name__}: {str(exc)[:200]}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


def _extract(data: bytes, kind: str, max_chars: int) -> Extracted:
    if kind == "pdf":
        out = _pdf(data, max_chars)
    elif kind == "docx":
        out = _docx(data)
    elif kind == "html":
        out = _html(data)
    elif kind in ("txt", "md"):
        decoded = _text_file(data, kind, guess=True)
        assert decoded is not None  # with guess=True every file decodes or is refused
        out = decoded
    else:
        raise Refused(f"unsupported file type {kind!r}")
    return _capped(out, max_chars)


def _capped(out: Extracted, max_chars: int) -> Extracted:
    if len(out.text) > max_chars:
        raise Refused(f"extracted text is longer than the {max_chars:,} character limit")
    return out


def _text_file(data: bytes, kind: str, *, guess: bool) -> Extracted | None:
    """A .txt/.md file in whatever encoding it came: a BOM's, UTF-8, UTF-16/32 without a
    BOM (told by where the zero bytes fall), else (``guess``) what charset-normalizer finds
    (Latin-1, Windows-1252, ...); None when it needs that guess and ``guess`` is off. Text
    that decodes to nothing sensible, or holds NUL bytes, is refused."""
    text = _decode_known(data)
    if text is None:
        if not guess:
            return None
        text = _decode_guess(data)
    if "\x00" in text:
        raise Refused("the text contains NUL bytes; it looks like a binary file, not text")
    return Extracted(text, title=_md_title(text) if kind == "md" else None)


_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),  # before UTF-16's: FF FE 00 00
         (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))


def _decode_known(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec.replace("-sig", ""))
            except UnicodeDecodeError as exc:
                raise Refused(f"the text is not valid {codec.upper()} after its byte order mark (byte {exc.start})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    wide = _bomless_utf16_32(data)
    if wide is not None:
        try:
            return data.decode(wide)
        except UnicodeDecodeError:
            return None
    return None


def _decode_guess(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise Refused("the file is not text in any encoding we recognise (UTF-8/16/32, Latin-1, Windows-1252, ...)")
    best = min(matches, key=lambda m: (m.chaos, -m.coherence))
    # Single-byte encodings often tie (cp1250 and cp1252 read French alike but for a few
    # letters); among the equally clean readings prefer Windows-1252, the Western default
    # browsers use for unlabeled text (and a superset of Latin-1's printable characters).
    for m in matches:
        if m.chaos <= best.chaos + 0.01 and "cp1252" in m.could_be_from_charset:
            return data.decode("cp1252")
    return str(best)


def _bomless_utf16_32(data: bytes) -> str | None:
    """UTF-32/16 without a BOM, from their zero bytes: mostly-ASCII text in UTF-32-LE has
    three zeros after each character byte, in UTF-16-LE one (mirrored for BE)."""
    sample = data[:4096]
    n = len(sample)
    if n < 4 or sample.count(0) < n // 4:
        return None
    if len(data) % 4 == 0:
        for codec, zeros_at in (("utf-32-le", (1, 2, 3)), ("utf-32-be", (0, 1, 2))):
            if all(sample[i] == 0 for k in range(0, n - 3, 4) for i in (k + z for z in zeros_at)):
                return codec
    if len(data) % 2 == 0:
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > 0.6 * (n // 2) and even < 0.1 * (n // 2):
            return "utf-16-le"
        if even > 0.6 * (n // 2) and odd < 0.1 * (n // 2):
            return "utf-16-be"
    return None


def _md_title(text: str) -> str | None:
    # From the decoded text: a UTF-16 file read as UTF-8 had no title at all.
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()[:300] or None
    return None


def _pdf(data: bytes, max_chars: int) -> Extracted:
    if b"%PDF" not in data[:1024]:
        raise Refused("not a PDF file (no %PDF header)")
    import logging

    logging.disable(logging.WARNING)  # pypdf warns on every recoverable defect
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise Refused("the PDF uses AES encryption and the cryptography package is missing") from None
            if not opened:
                raise Refused("the PDF is encrypted with a password; upload an unprotected copy")
        n = len(reader.pages)
        if n > MAX_PDF_PAGES:
            raise Refused(f"the PDF has {n} pages; the limit is {MAX_PDF_PAGES}")
        parts: list[str] = []
        total = 0
        failed = 0
        for page in reader.pages:
            try:
                t = page.extract_text() or ""
            except (PdfReadError, ValueError, KeyError, TypeError, AttributeError):
                failed += 1
                continue
            total += len(t)
            if total > max_chars:
                raise Refused(f"extracted text is longer than the {max_chars:,} character limit")
            parts.append(t.replace("\x00", ""))
        if n and failed == n:
            raise Refused("no page of the PDF could be read (corrupt file)")
        title = None
        try:
            meta = reader.metadata
            title = str(meta.title).strip() if meta and meta.title else None
        except Exception:  # unreadable metadata must not sink a readable document
            title = None
        return Extracted("\n\n".join(parts), title=title or None, pages=n)
    except FileNotDecryptedError:
        raise Refused("the PDF is encrypted with a password; upload an unprotected copy") from None
    except PdfReadError as exc:
        raise Refused(f"corrupt PDF: {str(exc)[:200]}") from None


def _docx(data: bytes) -> Extracted:
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Refused("not a valid DOCX file (it is not a ZIP archive)") from None
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise Refused(f"the DOCX archive has {len(infos)} entries; the limit is {MAX_ZIP_ENTRIES}")
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_UNCOMPRESSED:
        raise Refused(f"the DOCX would unpack to {total:,} bytes (zip bomb?); the limit is {MAX_ZIP_UNCOMPRESSED:,}")
    for i in infos:
        if i.file_size > 1_000_000 and i.file_size > MAX_ZIP_RATIO * max(1, i.compress_size):
            raise Refused(f"the DOCX entry {i.filename!r} is compressed {i.file_size // max(1, i.compress_size)}:1 (zip bomb?)")
    if "word/document.xml" not in zf.namelist():
        raise Refused("not a valid DOCX file (no word/document.xml)")
    # python-docx parses with entity resolution off, but a DTD in an Office part is never
    # legitimate: refuse the file instead of trusting every parser down the line.
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    for i in infos:
        if i.filename.endswith((".xml", ".rels")):
            try:
                DET.fromstring(zf.read(i), forbid_dtd=True)
            except DefusedXmlException:
                raise Refused(
                    f"the DOCX part {i.filename!r} declares a DTD or XML entities (XXE risk); refused"
                ) from None
            except DET.ParseError as exc:
                raise Refused(f"corrupt DOCX: {i.filename!r} is not well-formed XML ({exc})") from None
    import docx

    doc = docx.Document(io.BytesIO(data))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append(" | ".join(c.text for c in row.cells))
    title = (doc.core_properties.title or "").strip() or None
    return Extracted("\n".join(parts), title=title)


def _html(data: bytes) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text().strip() if soup.title else None
    # Only the head's non-text elements go, never the head itself: in a real page whose
    # <head> is never closed, the parser puts the whole body inside it.
    for tag in soup(["title", "meta", "link", "base"]):
        tag.decompose()
    text = soup.get_text("\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return Extracted(text, title=title or None)


if __name__ == "__main__":
    _child()

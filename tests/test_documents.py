"""Document ingestion against the real database, the real model and real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import learnloop
from learnloop.embeddings import get_provider
from learnloop.errors import InvalidInput
from tests.conftest import DATA
from tests.files import hostile

FILES = Path(__file__).parent / "files"
DOCS = DATA / "docs"
MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def kn(client: learnloop.Client):
    return client.knowledge


def _count(client, sql: str, *params) -> int:
    with client.db.connection() as conn:
        return conn.execute(sql, params).fetchone()["n"]


def _events(client, event_type: str, entity_id) -> int:
    return _count(client, "SELECT count(*) AS n FROM learnloop.events WHERE event_type = %s AND entity_id = %s",
                  event_type, str(entity_id))


def test_folder_of_real_documents_is_chunked_and_embedded(client, kn):
    results = kn.ingest_many([DOCS])
    by_name = {r.file_name: r for r in results}
    # Every supported file in the folder, nothing else (README/LICENSE are .md/no ext).
    assert {"pdflatex-4-pages.pdf", "google-doc-document.pdf", "multicolumn.pdf", "loan-policy.md",
            "payment-plans.html", "collections-faq.txt"} <= set(by_name)
    assert by_name["LICENSE-pypdf-sample-files"].status == "failed"
    assert "unsupported file type" in by_name["LICENSE-pypdf-sample-files"].error
    for name in ("pdflatex-4-pages.pdf", "google-doc-document.pdf", "loan-policy.md", "payment-plans.html"):
        r = by_name[name]
        assert r.status == "processed", (name, r.error)
        assert r.chunks >= 1
        doc = kn.document(r.document_id, chunks=True)
        assert doc["status"] == "processed" and doc["chunk_count"] == r.chunks == len(doc["chunks"])
        assert [c["chunk_index"] for c in doc["chunks"]] == list(range(r.chunks))
        text = doc["extracted_text"]
        for c in doc["chunks"]:  # offsets point at the chunk inside the extracted text
            assert text[c["char_start"]:c["char_end"]] == c["text"]
            assert 0 < c["token_count"] <= client.settings.chunk_tokens
        with client.db.connection() as conn:
            rows = conn.execute(
                "SELECT owner_id, content, embedding, metadata FROM learnloop.embeddings"
                " WHERE tenant_id = %s AND document_id = %s AND model = %s",
                (client.scope.tenant_id, r.document_id, MODEL),
            ).fetchall()
        assert {x["owner_id"] for x in rows} == {c["id"] for c in doc["chunks"]}
        for x in rows:
            v = x["embedding"].to_numpy()
            assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
            assert x["metadata"]["file_name"] == name and x["metadata"]["active"] is True
        assert _events(client, "document.ingested", r.document_id) == 1
    # The 4-page LaTeX sample is long enough to need several chunks.
    assert by_name["pdflatex-4-pages.pdf"].chunks > 3
    html = kn.document(by_name["payment-plans.html"].document_id)
    assert html["title"] == "Payment plans and late payments"
    assert "console.log" not in html["extracted_text"] and "font-family" not in html["extracted_text"]
    assert kn.document(by_name["loan-policy.md"].document_id)["title"] == "Personal loan policy"
    assert kn.document(by_name["google-doc-document.pdf"].document_id)["title"] == "PDF Example Document"


def test_nearest_chunk_through_the_model_index_is_the_relevant_one(client, kn):
    q = get_provider().embed(["how much is the fee when I pay late?"])[0]
    with client.db.connection() as conn:
        conn.execute("SET enable_seqscan = off")
        row = conn.execute(
            "SELECT e.metadata ->> 'file_name' AS f FROM learnloop.embeddings e"
            " WHERE e.tenant_id = %s AND e.model = %s"
            " ORDER BY (e.embedding::vector(384)) <=> %s::vector(384) LIMIT 1",
            (client.scope.tenant_id, MODEL, q),
        ).fetchone()
        conn.execute("RESET enable_seqscan")
    assert row["f"] in ("payment-plans.html", "collections-faq.txt")


def test_same_file_again_is_a_no_op(client, kn):
    path = DOCS / "loan-policy.md"
    first = kn.ingest(path)
    before = kn.document(first.document_id, chunks=True)
    again = kn.ingest(path)
    assert again.status == "unchanged" and again.document_id == first.document_id
    after = kn.document(first.document_id, chunks=True)
    assert after["updated_at"] == before["updated_at"]
    assert [c["id"] for c in after["chunks"]] == [c["id"] for c in before["chunks"]]
    assert _events(client, "document.ingested", first.document_id) == 1


def test_changed_file_replaces_its_chunks(client, kn, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("Goats climb mountains easily.\n\n" * 3)
    one = kn.ingest(f)
    old_chunks = {c["id"] for c in kn.document(one.document_id, chunks=True)["chunks"]}
    f.write_text("Quarterly revenue grew by twelve percent in the retail segment.\n")
    two = kn.ingest(f)
    assert two.status == "processed" and two.document_id == one.document_id
    doc = kn.document(two.document_id, chunks=True)
    assert "revenue" in doc["extracted_text"] and "Goats" not in doc["extracted_text"]
    assert not old_chunks & {c["id"] for c in doc["chunks"]}
    assert _count(client, "SELECT count(*) AS n FROM learnloop.chunks WHERE document_id = %s", one.document_id) == len(doc["chunks"])
    assert _count(client, "SELECT count(*) AS n FROM learnloop.embeddings WHERE owner_id = ANY(%s)", list(old_chunks)) == 0
    assert _count(client, "SELECT count(*) AS n FROM learnloop.embeddings WHERE document_id = %s", one.document_id) == len(doc["chunks"])
    with client.db.connection() as conn:
        payloads = [r["payload"] for r in conn.execute(
            "SELECT payload FROM learnloop.events WHERE event_type = 'document.ingested' AND entity_id = %s"
            " ORDER BY id", (str(one.document_id),)).fetchall()]
    assert [p["replaced"] for p in payloads] == [False, True]


REAL_PDF = (DOCS / "pdflatex-4-pages.pdf").read_bytes()


def _hostile_cases(tmp: Path) -> list[tuple[str, bytes, str]]:
    secret = tmp / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN-4711")
    return [
        ("empty.txt", b"", "the file is empty (0 bytes): nothing to index"),
        ("program.exe", b"MZ\x90\x00binary", "unsupported file type '.exe'"),
        ("noext", b"hello", "unsupported file type"),
        ("aes256.pdf", (FILES / "crazyones-encrypted-256.pdf").read_bytes(), "encrypted with a password"),
        ("libreoffice-password.pdf", (FILES / "libreoffice-writer-password.pdf").read_bytes(), "encrypted with a password"),
        ("made-encrypted.pdf", hostile.encrypted_pdf(REAL_PDF), "encrypted with a password"),
        ("truncated.pdf", hostile.truncated_pdf(REAL_PDF), "corrupt PDF"),
        ("not-really.pdf", b"just some words, no PDF header", "not a PDF file"),
        ("bomb.docx", hostile.zip_bomb(60), "zip bomb"),
        ("xxe.docx", hostile.docx_with_xxe(str(secret)), "XXE"),
        ("plain.docx", b"this is not a zip", "not a ZIP archive"),
        ("nul.txt", b"hello\x00world", "NUL bytes"),
        ("blank.md", b"   \n\n  \n", "the file holds no text: its 8 bytes are only whitespace"),
        ("blank.txt", b" \t\n", "the file holds no text: its 3 bytes are only whitespace"),
        ("blank.html", b"<html><body><p> </p></body></html>", "the html document holds no text"),
    ]


def test_hostile_and_broken_files_end_failed_with_a_reason(client, kn, tmp_path):
    for name, data, reason in _hostile_cases(tmp_path):
        r = kn.ingest_bytes(data, file_name=name, source=f"hostile/{name}")
        assert r.status == "failed", (name, r)
        assert reason in r.error, (name, r.error)
        doc = kn.document(r.document_id, chunks=True)
        assert doc["status"] == "failed" and doc["error"] == r.error
        assert doc["chunks"] == [] and doc["chunk_count"] == 0 and doc["extracted_text"] is None
        assert _count(client, "SELECT count(*) AS n FROM learnloop.embeddings WHERE document_id = %s", r.document_id) == 0
        assert _events(client, "document.failed", r.document_id) == 1
    with client.db.connection() as conn:
        leaked = conn.execute("SELECT count(*) AS n FROM learnloop.chunks WHERE text LIKE '%%TOP-SECRET%%'").fetchone()
    assert leaked["n"] == 0


def test_malformed_but_recoverable_pdfs_never_raise(kn):
    for name in ("issue-297.pdf", "issue-301.pdf"):
        r = kn.ingest(FILES / name)
        assert r.status in ("processed", "failed")
        assert (r.status == "failed") == bool(r.error)


def test_limits_oversize_and_wall_clock(client):
    tight = learnloop.Client(client.db, client.settings.model_copy(update={"max_file_bytes": 1000}),
                             client.tenant, client.project)
    r = tight.knowledge.ingest(DOCS / "pdflatex-4-pages.pdf", source="limits/big.pdf")
    assert r.status == "failed" and "the limit is 1,000" in r.error
    slow = learnloop.Client(client.db, client.settings.model_copy(update={"extract_timeout": 0.05}),
                            client.tenant, client.project)
    r = slow.knowledge.ingest(DOCS / "pdflatex-4-pages.pdf", source="limits/slow.pdf")
    assert r.status == "failed" and "longer than 0.05 s" in r.error
    small = learnloop.Client(client.db, client.settings.model_copy(update={"extract_memory_mb": 40}),
                             client.tenant, client.project)
    r = small.knowledge.ingest(DOCS / "pdflatex-4-pages.pdf", source="limits/small.pdf")
    assert r.status == "failed" and "40 MB memory limit" in r.error


def test_real_docx_is_extracted(kn):
    data = hostile.docx(["Refunds are paid within 14 days.", "Contact support for help."], title="Refunds")
    r = kn.ingest_bytes(data, file_name="refunds.docx")
    assert r.status == "processed"
    doc = kn.document(r.document_id)
    assert doc["title"] == "Refunds" and "within 14 days" in doc["extracted_text"]


class WrongDimensions:
    """Claims 384 dimensions, returns 383: the write must fail after the document row."""

    model_id = MODEL
    dimensions = 384

    def embed(self, texts):
        return np.ones((len(texts), 383), dtype=np.float32)


def test_an_embedding_failure_writes_nothing(client, kn, tmp_path):
    f = tmp_path / "atomic.txt"
    f.write_text("Version one of a very particular sentence about sandcastles.")
    bad = kn.with_provider(WrongDimensions())
    with pytest.raises(InvalidInput, match="dimensions"):
        bad.ingest(f)
    assert _count(client, "SELECT count(*) AS n FROM learnloop.documents WHERE source = %s", str(f.resolve())) == 0
    # Over an existing version: the old chunks and vectors survive untouched.
    good = kn.ingest(f)
    before = kn.document(good.document_id, chunks=True)
    f.write_text("Version two, about lighthouses instead.")
    with pytest.raises(InvalidInput):
        bad.ingest(f)
    after = kn.document(good.document_id, chunks=True)
    assert after["content_hash"] == before["content_hash"] and after["chunks"] == before["chunks"]
    assert _events(client, "document.ingested", good.document_id) == 1


def test_bad_arguments_raise_specific_errors(kn):
    with pytest.raises(InvalidInput, match="NUL"):
        kn.ingest_bytes(b"x", file_name="a\x00.txt")
    with pytest.raises(learnloop.NotFound):
        kn.ingest("/no/such/file.pdf")
    with pytest.raises(InvalidInput, match="metadata must be a JSON object"):
        kn.ingest_bytes(b"x", file_name="m.txt", metadata=[1])


def test_cli_ingest_with_progress_summary_and_json(cli_env, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("Interest stops accruing on the day of early repayment.")
    (folder / "b.md").write_text("# B\n\nA short markdown note about fees.")
    (folder / "empty.txt").write_text("")
    cmd = [sys.executable, "-m", "learnloop.cli.main", "--project", "cli-ingest"]
    out = subprocess.run([*cmd, "ingest", str(folder), "--json"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr  # one file failed
    rows = json.loads(out.stdout)
    assert {r["file_name"]: r["status"] for r in rows} == {"a.txt": "processed", "b.md": "processed", "empty.txt": "failed"}
    again = subprocess.run([*cmd, "ingest", str(folder / "a.txt")], env=cli_env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    listing = subprocess.run([*cmd, "documents", "--json", "--status", "failed"], env=cli_env, capture_output=True,
                             text=True, timeout=120)
    assert [d["file_name"] for d in json.loads(listing.stdout)] == ["empty.txt"]
    missing = subprocess.run([*cmd, "ingest", "/no/such/dir"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.strip().startswith("Error: no such file or folder")
    assert "Traceback" not in missing.stderr


def test_empty_files_in_a_folder_fail_alone_with_their_own_reason(client, tmp_path):
    kn = client.scoped(project="empty-files").knowledge
    (tmp_path / "a-good.txt").write_text("Loans are approved within two business days.")
    (tmp_path / "b-empty.txt").write_bytes(b"")
    (tmp_path / "c-blank.md").write_text("  \n\n ")
    (tmp_path / "d-good.md").write_text("# Fees\n\nA late payment costs a fee of 5%.")
    seen = []
    results = kn.ingest_many([tmp_path], on_result=lambda r: seen.append(r.file_name))
    assert [r.file_name for r in results] == ["a-good.txt", "b-empty.txt", "c-blank.md", "d-good.md"]
    assert sorted(seen) == [r.file_name for r in results]  # each reported once
    assert [r.status for r in results] == ["processed", "failed", "failed", "processed"]
    assert results[1].error == "the file is empty (0 bytes): nothing to index"
    assert results[2].error == "the file holds no text: its 5 bytes are only whitespace"
    assert all(r.document_id is not None for r in results)
    # once more, unchanged: no work, same ids, and the failures keep their reasons
    again = kn.ingest_many([tmp_path])
    assert [r.status for r in again] == ["unchanged"] * 4
    assert [r.document_id for r in again] == [r.document_id for r in results]
    assert again[1].error == results[1].error


def test_many_files_embedded_together_match_one_by_one(client, tmp_path):
    """Batching chunks across files changes nothing stored: each document's vectors are
    those of its own chunks, one transaction (and one event) per document."""
    kn = client.scoped(project="batched").knowledge
    texts = {f"f{i:02d}.txt": f"Document {i}. " + " ".join(f"word{i}x{j}" for j in range(30 + 7 * i))
             for i in range(12)}
    for name, t in texts.items():
        (tmp_path / name).write_text(t)
    results = kn.ingest_many([tmp_path])
    assert [r.status for r in results] == ["processed"] * 12
    provider = get_provider()
    with client.db.connection() as conn:
        for r in results:
            rows = conn.execute(
                "SELECT c.text, e.embedding FROM learnloop.chunks c JOIN learnloop.embeddings e"
                " ON e.tenant_id = c.tenant_id AND e.owner_id = c.id WHERE c.document_id = %s ORDER BY c.chunk_index",
                (r.document_id,)).fetchall()
            assert len(rows) == r.chunks >= 1
            assert "".join(x["text"] for x in rows).startswith(f"Document {r.file_name[1:3].lstrip('0') or '0'}.")
            want = provider.embed([x["text"] for x in rows])
            got = np.array([x["embedding"].to_numpy() for x in rows])
            assert np.allclose(got, want, atol=1e-4)
            assert _events(client, "document.ingested", r.document_id) == 1


def test_unicode_text_decoded_in_process_keeps_the_sandbox_checks():
    """UTF-8/16 text skips the child interpreter, not its limits; a guess still runs there."""
    from learnloop.knowledge import extract

    tight = extract.Limits(max_chars=10)
    with pytest.raises(extract.Refused, match="10 character limit"):
        extract.run("ünïcode text that is long".encode(), "txt", tight)
    with pytest.raises(extract.Refused, match="NUL bytes"):
        extract.run("a\x00b".encode("utf-16"), "md", extract.Limits())
    md = extract.run("# Título\n\ncuerpo".encode("utf-16-le"), "md", extract.Limits())
    assert md.text.startswith("# Título") and md.title == "Título"
    latin1 = extract.run("Crédito vencido, señor".encode("cp1252"), "txt", extract.Limits())
    assert latin1.text == "Crédito vencido, señor"  # charset-normalizer's guess, in the child

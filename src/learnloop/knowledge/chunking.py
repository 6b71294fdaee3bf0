"""Token-aware chunking with overlap, counted with the embedding model's own tokenizer.

``semantic-text-splitter`` (Rust) splits at the largest semantic boundary that fits
(paragraphs, then sentences, then words) and never exceeds ``max_tokens`` as counted by
the all-MiniLM-L6-v2 tokenizer, which is what the model truncates by (256 word pieces).
Markdown uses the Markdown-aware splitter so headings stay with their section. The
packaged tokenizer.json ships with truncation at 128 and padding on; both are turned off
here, or every long text would count as 128 tokens and never be split.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import InvalidInput


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    char_start: int
    char_end: int
    token_count: int


@functools.lru_cache(maxsize=1)
def _tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    from ..embeddings.local import tokenizer_file

    tok = Tokenizer.from_file(str(tokenizer_file()))
    tok.no_truncation()
    tok.no_padding()
    return tok


@functools.lru_cache(maxsize=8)
def _splitter(markdown: bool, max_tokens: int, overlap: int):  # type: ignore[no-untyped-def]
    import semantic_text_splitter as sts

    cls = sts.MarkdownSplitter if markdown else sts.TextSplitter
    return cls.from_huggingface_tokenizer(_tokenizer(), max_tokens, overlap=overlap)


def chunk_text(text: str, *, max_tokens: int = 200, overlap: int = 32, markdown: bool = False) -> list[Chunk]:
    """Chunks in order with their character span in ``text`` and their token count."""
    if max_tokens < 16 or max_tokens > 8192:
        raise InvalidInput("chunk size must be between 16 and 8192 tokens", field="chunk_tokens")
    if overlap < 0 or overlap >= max_tokens:
        raise InvalidInput("chunk overlap must be at least 0 and smaller than the chunk size", field="chunk_overlap")
    pieces = _splitter(markdown, max_tokens, overlap).chunk_indices(text)
    pieces = [(start, t) for start, t in pieces if t.strip()]  # offsets are str indices
    texts = [t for _, t in pieces]
    counts = [len(e.ids) for e in _tokenizer().encode_batch(texts, add_special_tokens=False)] if texts else []
    return [
        Chunk(i, t, start, start + len(t), n)
        for i, ((start, t), n) in enumerate(zip(pieces, counts, strict=True))
    ]

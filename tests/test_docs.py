"""Docs that cannot drift: the generated pages must match the code (run `make docs`)."""

from __future__ import annotations

from learnloop import docsgen


def test_data_model_page_matches_the_migrations(pg_server):
    url = docsgen.scratch_database_url(pg_server, name="docs_check")
    assert (docsgen.DOCS / "data-model.md").read_text() == docsgen.data_model(url), "run `make docs`"


def test_cli_reference_matches_the_commands():
    assert (docsgen.DOCS / "cli.md").read_text() == docsgen.cli_reference(), "run `make docs`"


def test_readme_shows_the_two_commands():
    readme = (docsgen.DOCS.parent / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme

"""`make serve` reuses the demo's data only when the demo ran to its end: an interrupted
run leaves no completion marker, and the next `make serve` finishes it (without duplicating
what the first part wrote)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import learnloop
from learnloop import demo
from learnloop.console import demo_data
from learnloop.ledger import demo_images


def _section(name: str, fail: bool) -> str:
    mod = types.ModuleType(name)

    def run(ll: object, console: object) -> None:
        if fail:
            raise KeyboardInterrupt  # Ctrl-C half-way through the demo

    mod.run = run  # type: ignore[attr-defined]
    sys.modules[name] = mod
    return name


def _images(ll: learnloop.Client) -> int:
    with ll.db.connection() as conn:
        return int(conn.execute("SELECT count(*) AS n FROM learnloop.generations WHERE tenant_id = %s AND kind = 'image'",
                                (ll.scope.tenant_id,)).fetchone()["n"])


def test_an_interrupted_demo_is_finished_by_the_next_serve(fresh_client: learnloop.Client, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEARNLOOP_DATABASE_URL", fresh_client.db.url)
    monkeypatch.setenv("LEARNLOOP_HOME", str(tmp_path))
    images = ("images", "learnloop.ledger.demo_images")
    monkeypatch.setattr(demo, "SECTIONS", [images, ("later", _section("demo_later_fails", fail=True))])
    with pytest.raises(KeyboardInterrupt):
        demo.main()
    ll = learnloop.connect(fresh_client.db.url, project="demo", home=tmp_path)
    assert _images(ll) == demo_images.N_IMAGES  # the first part was written...
    assert not (tmp_path / demo_data.MARKER).exists()  # ...but the demo did not finish
    assert not demo_data.demo_complete(ll)

    # make serve: the marker is missing, so the demo runs again and this time finishes.
    monkeypatch.setattr(demo, "SECTIONS", [images, ("later", _section("demo_later_ok", fail=False))])
    demo_data.main()
    out = capsys.readouterr().out
    assert "did not finish" in out
    assert (tmp_path / demo_data.MARKER).exists() and demo_data.demo_complete(ll)
    assert _images(ll) == demo_images.N_IMAGES  # finished, nothing written twice

    # The next make serve starts at once: the demo does not run (a section would fail).
    monkeypatch.setattr(demo, "SECTIONS", [("later", _section("demo_must_not_run", fail=True))])
    demo_data.main()
    assert "already loaded" in capsys.readouterr().out
    ll.close()


def test_the_marker_speaks_for_one_database(fresh_client: learnloop.Client, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNLOOP_HOME", str(tmp_path))
    ll = fresh_client.scoped(project="demo")
    ll.log(kind="chat", prompt="hello")
    marker = tmp_path / demo_data.MARKER
    monkeypatch.setattr(ll, "settings", ll.settings.model_copy(update={"home": tmp_path}))
    demo_data.mark_complete(ll)
    assert demo_data.demo_complete(ll)
    marker.write_text(marker.read_text().replace('"database": "', '"database": "elsewhere-'))
    assert not demo_data.demo_complete(ll)
    marker.write_text("{half a marker")
    assert not demo_data.demo_complete(ll)


def test_an_older_demos_image_urls_are_moved_by_the_next_serve(fresh_client: learnloop.Client, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Data of a demo from before the pictures (``https://img.example.com/demo/...``, a host
    that does not answer): `make serve` does not re-run the demo, it points them at the
    pictures `learnloop serve` draws; other rows keep their URLs."""
    monkeypatch.setenv("LEARNLOOP_DATABASE_URL", fresh_client.db.url)
    monkeypatch.setenv("LEARNLOOP_HOME", str(tmp_path))
    ll = learnloop.connect(fresh_client.db.url, project="demo", home=tmp_path)
    demo_images.load(ll)
    ll.log(kind="image", prompt="not the demo's", output_url="https://img.example.com/demo/minimal/mine.png")
    with ll.db.connection() as conn:  # what the older demo wrote
        conn.execute("UPDATE learnloop.generations SET output_url = 'https://img.example.com/demo/'"
                     " || lower(config->>'style_preset') || '/' || substr(external_id, 12) || '.png'"
                     " WHERE tenant_id = %s AND external_id LIKE 'demo-image-%%'", (ll.scope.tenant_id,))
    demo_data.mark_complete(ll)
    monkeypatch.setattr(demo, "SECTIONS", [("later", _section("demo_must_not_run_2", fail=True))])
    demo_data.main()
    out = capsys.readouterr().out
    assert f"{demo_images.N_IMAGES} output URLs now point at the pictures" in out and "already loaded" in out
    gens, _ = demo_images.rows()
    with ll.db.connection() as conn:
        urls = {r["external_id"]: r["output_url"] for r in conn.execute(
            "SELECT external_id, output_url FROM learnloop.generations WHERE tenant_id = %s AND kind = 'image'",
            (ll.scope.tenant_id,)).fetchall()}
    assert urls[None] == "https://img.example.com/demo/minimal/mine.png"
    moved = {k: v for k, v in urls.items() if k}
    assert len(moved) == demo_images.N_IMAGES and all(v.startswith("/demo-images/") for v in moved.values())
    assert moved["demo-image-0"] == gens[0]["output_url"]
    assert demo_images.relocate(ll) == 0  # nothing left to move
    ll.close()

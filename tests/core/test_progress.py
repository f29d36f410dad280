from imrstats.core.progress import progress


def test_progress_is_silent_unless_asked(monkeypatch, capsys):
    monkeypatch.setenv("IMRSTATS_PROGRESS", "0")
    items = [1, 2, 3]
    assert progress(items, desc="x") is items
    monkeypatch.setenv("IMRSTATS_PROGRESS", "1")
    assert list(progress(items, desc="outcomes", unit="outcome")) == items
    assert "outcomes" in capsys.readouterr().err

"""The scratch folder every run of a host shares: its runs' folders and the host's lock."""


def test_a_host_lock_is_no_run_for_doctor_clean(tmp_path, monkeypatch):
    """WORKDIR holds runs' folders and the host's lock files: asking whether a lock file is a
    live run is "no", not NotADirectoryError (doctor --clean asks it of every entry)."""
    from bench import session

    monkeypatch.setattr(session, "WORKDIR", tmp_path)
    (tmp_path / "host.lock").write_text("run 20261129T000000Z-vm (pid 1)\n")
    assert session.run_is_live("host.lock") is False
    assert session.run_is_live("20261129T000000Z-vm") is False

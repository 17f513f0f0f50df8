"""What a run prints where no terminal watches (a CI log, a pipe): its lines, no bar."""

from bench.console import progress_bar


def test_without_a_terminal_each_step_is_one_plain_line(capsys):
    with progress_bar(2) as bar:
        bar.start("noop@native rep 0")
        bar.done("  noop@native rep 0: ready 6.04 ms")
        bar.start("noop@runc rep 0")
        bar.done("  noop@runc rep 0: [red]failed[/red] OSError: [Errno 28] No space left")
    assert capsys.readouterr().out.splitlines() == [
        "  noop@native rep 0: ready 6.04 ms",
        "  noop@runc rep 0: failed OSError: [Errno 28] No space left"]


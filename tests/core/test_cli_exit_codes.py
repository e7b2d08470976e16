"""Exit statuses of the command line: 0 ok, 1 mismatch, 2 bad input, 3 internal error."""

import pytest

import medrepro.verify as verify
from medrepro.cli import EXIT_INPUT, EXIT_INTERNAL, main


def _raise(exc):
    def f(*a, **k):
        raise exc
    return f


def test_an_internal_error_exits_3_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(verify, "verify_results", _raise(RuntimeError("boom\nsecond line")))
    assert main(["verify", "x"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.strip() == "medrepro verify: internal error (RuntimeError): boom second line"
    assert "Traceback" not in err


def test_debug_prints_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(verify, "verify_results", _raise(RuntimeError("boom")))
    assert main(["--debug", "verify", "x"]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("exc", [OSError(40, "Too many levels of symbolic links"),
                                 UnicodeEncodeError("utf-8", "\\udcff", 0, 1, "surrogates not allowed")])
def test_unreadable_or_unencodable_paths_are_bad_input(monkeypatch, capsys, exc):
    monkeypatch.setattr(verify, "verify_results", _raise(exc))
    assert main(["verify", "x"]) == EXIT_INPUT
    assert "error" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main(["no-such-command"]) == EXIT_INPUT
    assert main([]) == EXIT_INPUT

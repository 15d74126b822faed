from hf_scratch.cli import main


def test_params_prints_the_books_figures(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "Total parameters: 163,009,536" in out
    assert "Considering weight tying: 124,412,160" in out
    assert "621.83 MB" in out


def test_params_of_a_tied_gpt2_medium_in_bf16(capsys):
    assert main(["params", "--preset", "355M", "--tied", "--qkv-bias", "--bytes", "2"]) == 0
    out = capsys.readouterr().out
    assert "24 layers x 1024 dims x 16 heads" in out and "Total parameters: 354,823,168" in out


def test_unknown_preset_is_an_error_not_a_traceback(capsys):
    assert main(["params", "--preset", "gpt5"]) == 2
    assert "unknown preset 'gpt5'" in capsys.readouterr().err

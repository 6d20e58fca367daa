"""`make bench-quality`'s arguments: a scale the chosen data has not is refused (exit 2)."""

from __future__ import annotations

import pytest

from benchmarks import quality


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "weekly", "--scale", "bench"], "--data weekly has one scale"),
        (
            ["--data", "realistic", "--scale", "tiny"],
            "--scale tiny is not a scale of the realistic",
        ),
        (
            ["--data", "generated", "--scale", "bench"],
            "--scale bench is not a scale of the generated",
        ),
    ],
)
def test_a_scale_the_data_has_not_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        quality.main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_weekly_example_is_the_checked_in_one():
    assert (quality.WEEKLY_EXAMPLE / "sales.csv").is_file()

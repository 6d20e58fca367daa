"""The page checker itself: it sees drawn figures, and it sees what breaks a page."""

import base64

from tests.browser import render

# a 1×1 PNG: a figure that loads
_PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def test_a_page_with_figures_renders_clean(tmp_path):
    page = tmp_path / "ok.html"
    page.write_text(
        "<html><head><title>report</title></head><body>"
        f'<img src="data:image/png;base64,{_PIXEL}" width="40" height="40">'
        '<svg width="40" height="40"><rect width="40" height="40"/></svg></body></html>'
    )
    rendered = render(page, tmp_path / "ok.png")
    assert rendered.title == "report"
    assert rendered.images == 2
    assert rendered.problems == []
    assert (tmp_path / "ok.png").stat().st_size > 0


def test_script_errors_and_broken_images_are_reported(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><img src='missing.png' width='40' height='40'>"
        "<script>console.error('plot failed'); undefinedFunction();</script></body></html>"
    )
    rendered = render(page, tmp_path / "broken.png")
    assert rendered.images == 0  # the missing image does not count as drawn
    assert any("plot failed" in error for error in rendered.console_errors)
    assert any("undefinedFunction" in error for error in rendered.page_errors)
    assert any(url.endswith("missing.png") for url in rendered.failed_requests)

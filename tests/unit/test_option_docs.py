"""docs/options.md is what the options' declarations generate."""

from pathlib import Path

from ingestload import optiondocs
from ingestload.api.config import API_OPTIONS
from ingestload.fanout.config import FANOUT_OPTIONS
from ingestload.settings import OPTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_the_committed_options_page_is_up_to_date():
    """A declaration changed without regenerating docs/options.md fails, and says how to fix it."""
    assert DOCS.read_text(encoding="utf-8") == optiondocs.render(), (
        "docs/options.md is stale: run `make docs` (python -m ingestload.optiondocs > docs/options.md) "
        "and commit it"
    )


def test_every_option_of_every_command_is_documented_with_its_variable():
    """Each flag appears with its environment variable; secret options are marked."""
    page = optiondocs.render()
    for opt in (*OPTIONS, *API_OPTIONS, *FANOUT_OPTIONS):
        assert f"`{opt.env}`" in page, opt.flag
        row = next(line for line in page.splitlines() if f"`{opt.env}`" in line)
        assert ("*(secret" in row) == opt.secret, opt.flag

"""Write the example retailer exports under ``examples/`` (`make examples`).

Three small retailers' files, as a retailer would export them, seeded, so they are
reproducible byte for byte. Two are made from the generated retailer
(``synthetic.aggregate``):

* ``weekly/``: units per store, product and week (weeks start on Sunday), two years,
  planned promotions, temperature only, no weather forecasts;
* ``daily/``: units per store, product and day, seven months, temperature and rain,
  weather forecasts, planned promotions.

The third, ``realistic/``, is the realistic retailer (``synthetic.realistic``): 52
stores, two years of Thursday weeks from 1992, heavy-tailed volumes, price cuts and
promotions, new and delisted items, stock-outs, missing weather days, plan revisions,
and the deliberately broken rows its ``BROKEN.md`` lists.

``README.md`` (section "Use your own data") walks through importing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from synthetic import aggregate, generator, realistic

HERE = Path(__file__).resolve().parent

EXAMPLES = {
    "weekly": {
        "grain": "week",
        "week_start": "sunday",
        "days": 735,
        "measures": ("temperature_c",),
        "forecasts": False,
    },
    "daily": {
        "grain": "day",
        "week_start": "monday",
        "days": 210,
        "measures": ("temperature_c", "precipitation_mm"),
        "forecasts": True,
    },
}


def write(name: str, folder: Path) -> dict[str, int]:
    """The example ``name`` as CSV files in ``folder``; rows per file."""
    spec = EXAMPLES[name]
    data = generator.generate("tiny", seed=7, days=spec["days"])
    export = aggregate.aggregate(
        data,
        spec["grain"],
        spec["week_start"],
        measures=spec["measures"],
        forecasts=spec["forecasts"],
    )
    for stale in folder.glob("*.csv"):
        stale.unlink()
    return aggregate.export_files(export, folder)


def main() -> int:
    for name in EXAMPLES:
        rows = write(name, HERE / name)
        print(f"examples/{name}: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    rows = realistic.write(HERE / "realistic")
    print("examples/realistic: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    print(f"examples/realistic: sha256 {realistic.digest(HERE / 'realistic')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

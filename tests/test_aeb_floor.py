"""CI quality floor on the article-extraction benchmark (shared/benchmarks/aeb beside the clone).

Runs newsmill extraction (tasks.extract.extract_page, as ``newsmill extract`` does) over all 181 pages and
checks F1 / precision / recall against floors a little under the measured values (F1 0.974, P 0.974,
R 0.975 with the bundled rules), and that no page comes out empty. Skips when the data is absent.
Full report with bare-trafilatura baselines and speed: ``.venv/bin/python bench/aeb.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

AEB = Path(__file__).resolve().parents[2] / "shared/benchmarks/aeb"

F1_FLOOR = 0.968
PRECISION_FLOOR = 0.965
RECALL_FLOOR = 0.965

pytestmark = pytest.mark.skipif(not (AEB / "ground-truth.json").exists(), reason=f"no AEB data at {AEB}")


def test_aeb_quality_floor():
    from bench.aeb import run_benchmark

    s = run_benchmark(AEB, only=["newsmill"])["newsmill"]
    assert s.pages >= 180
    assert s.empty == 0, f"{s.empty} pages without output"
    assert s.f1 >= F1_FLOOR, s.summary()
    assert s.precision >= PRECISION_FLOOR, s.summary()
    assert s.recall >= RECALL_FLOOR, s.summary()

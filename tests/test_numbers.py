"""JSON numbers are read exactly as correctionlib reads them (rapidjson's parsing)."""

from __future__ import annotations

import numpy as np
from documents import REAL, binning, document, text, variables
from oracle import oracle_set

import corrax
from corrax._io.numbers import rapidjson_float


def _decimal_strings(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    formats = ["%.17g", "%.16g", "%.15g", "%.18g", "%.20g", "%.17e", "%.25f", "%.3f"]
    out = []
    for _ in range(n):
        value = rng.standard_normal() * 10.0 ** int(rng.integers(-30, 30))
        out.append(str(rng.choice(formats)) % value)
    out += ["-1.7453292519943293", "0.1", "123456789012345678901234.5", "1e-320", "2.5E3"]
    return [s if ("." in s or "e" in s.lower()) else s + ".0" for s in out]


def test_float_parsing_matches_correctionlib_bit_for_bit():
    strings = _decimal_strings(5000)
    strings += strings[:1000]  # repeated spellings (converted once per document)
    edges = ",".join(f"{i}.0" for i in range(len(strings) + 1))
    raw = text(document(binning("x", [0.0, 1.0], [0.0]), variables(("x", REAL))))
    raw = raw.replace(
        '"edges": [0.0, 1.0], "content": [0.0]',
        f'"edges": [{edges}], "content": [{",".join(strings)}]',
    )
    centres = np.arange(len(strings)) + 0.5
    want = oracle_set(raw)["c"].evaluate(centres)
    ours = np.array([rapidjson_float(s) for s in strings])
    np.testing.assert_array_equal(ours.view(np.int64), want.view(np.int64))
    np.testing.assert_array_equal(
        np.asarray(corrax.CorrectionSet.from_string(raw)["c"].evaluate(centres)).view(np.int64),
        want.view(np.int64),
    )
    # Python's correctly rounded float() differs from rapidjson on some of these
    assert any(float(s) != rapidjson_float(s) for s in strings)

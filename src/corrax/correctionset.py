"""``CorrectionSet``: a correctionlib document, its corrections evaluated with JAX."""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from correctionlib import schemav2

from . import _shared
from ._core.relax import Mode, make_for_set
from ._io import document
from ._io.validate import validate_compound, validate_correction
from .correction import CompoundCorrection, Correction
from .errors import UnknownCorrectionError

__all__ = ["CorrectionSet"]

_Settings = tuple[str, dict[str, float], "float | None"]


def _unknown(kind: str, name: str, known: list[str]) -> UnknownCorrectionError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return UnknownCorrectionError(f"no {kind} named {name!r} in this correction set{hint}")


class _Compounds(Mapping[str, CompoundCorrection]):
    """``cset.compound``: the compound corrections, by name."""

    def __init__(self, cset: CorrectionSet):
        self._cset = cset
        self._models = {c.name: c for c in cset.model.compound_corrections or []}
        self._cache: dict[str, CompoundCorrection] = {}

    def __getitem__(self, name: str) -> CompoundCorrection:
        if name not in self._models:
            raise _unknown("compound correction", name, list(self._models))
        if name not in self._cache:  # setdefault: one object even if two threads race
            members = {member: self._cset[member] for member in self._models[name].stack}
            self._cache.setdefault(name, CompoundCorrection(self._models[name], members))
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


class CorrectionSet(Mapping[str, Correction]):
    """A set of corrections, read like ``correctionlib.CorrectionSet``.

    Build it with ``from_file`` (``.json`` or ``.json.gz``), ``from_string``, or
    directly from a ``correctionlib.schemav2.CorrectionSet``, a plain dict or a path.
    The document is validated when it is loaded, like correctionlib does (its schema,
    then what its C++ loader checks); each correction is lowered to JAX the first time
    it is evaluated, and the lowering is cached. A set pickles by its document; copies
    unpickled in one process are one object (see ``corrax._shared``).
    """

    def __init__(self, source: schemav2.CorrectionSet | dict[str, Any] | str | os.PathLike[str]):
        model = document.load(source)
        for correction in model.corrections:
            validate_correction(correction)
        models = {c.name: c for c in model.corrections}
        for compound in model.compound_corrections or []:
            validate_compound(compound, models)
        self._init(model, None)

    def _init(self, model: schemav2.CorrectionSet, settings: _Settings | None) -> None:
        self._pickled: tuple[str, bytes] | None = None  # see _shared.state_of
        self._model = model
        self._models = {c.name: c for c in model.corrections}
        self._corrections: dict[str, Correction] = {}
        self._relax = settings
        self.compound: Mapping[str, CompoundCorrection] = _Compounds(self)

    @classmethod
    def _validated(cls, model: schemav2.CorrectionSet, settings: _Settings | None):
        cset = cls.__new__(cls)
        cset._init(model, settings)
        return cset

    def __copy__(self) -> CorrectionSet:
        return CorrectionSet._validated(self._model, self._relax)

    def __deepcopy__(self, memo: dict) -> CorrectionSet:
        return CorrectionSet._validated(copy.deepcopy(self._model, memo), self._relax)

    def __reduce__(self):
        digest, data = _shared.state_of(self, lambda: (self._model, self._relax))
        return _shared.unpickle, ("CorrectionSet", digest, data, CorrectionSet._validated)

    def relaxed(
        self,
        mode: Mode,
        widths: Mapping[str, float] | None = None,
        formula_width: float | None = None,
    ) -> CorrectionSet:
        """The same set with every correction relaxed (see ``Correction.relaxed``).

        Straight-through relaxes every real input; smooth relaxes the inputs named in
        ``widths`` (by input name, shared by all corrections that have such an input).
        Compound corrections chain the relaxed members.
        """
        settings = (mode, dict(widths or {}), formula_width)
        copy = CorrectionSet._validated(self._model, settings)
        for name in copy:  # check the arguments now, not at first use
            copy[name]
        return copy

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CorrectionSet:
        """Read a ``.json`` or gzip-compressed ``.json.gz`` correctionlib file."""
        return cls(document.load(path))

    @classmethod
    def from_string(cls, text: str) -> CorrectionSet:
        """Read a correctionlib document from its JSON text."""
        return cls(document.validate(document.parse_text(text), origin="<string>"))

    @property
    def model(self) -> schemav2.CorrectionSet:
        """The validated correctionlib schema-v2 model."""
        return self._model

    @property
    def description(self) -> str:
        return self._model.description or ""

    @property
    def schema_version(self) -> int:
        return self._model.schema_version

    def __getitem__(self, name: str) -> Correction:
        if name not in self._models:
            raise _unknown("correction", name, list(self._models))
        if name not in self._corrections:  # setdefault: one object even if threads race
            correction = self._relaxed(Correction._validated(self._models[name]))
            self._corrections.setdefault(name, correction)
        return self._corrections[name]

    def _relaxed(self, correction: Correction) -> Correction:
        if self._relax is None:
            return correction
        mode, widths, formula_width = self._relax
        relaxation = make_for_set(correction.name, correction.inputs, mode, widths, formula_width)
        return Correction._relaxed_copy(correction, relaxation)

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        compounds = f", {len(self.compound)} compound" if len(self.compound) else ""
        return f"<corrax.CorrectionSet with {len(self)} corrections{compounds}>"

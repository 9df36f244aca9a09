"""Corrections as behaviors of awkward record types (``Muon``, ``Jet``, …).

A ``Binding`` says where each input of a correction comes from, for one record type:

* a field of the record, by name (``pt="pt"``) — for real and int inputs;
* an expression of the record (``abseta=lambda muon: abs(muon.eta)``);
* a constant (``year="2018_UL"`` for a string input, ``2.5`` for a numeric one);
* ``argument()``: left to the caller, so the behavior becomes a method
  (``muons.id_sf("systup")``), optionally with a default (``argument("sf")``). Event-level
  columns (``rho=argument()``, then ``jets.jec(rho=events.fixedGridRhoFastjetAll)``)
  broadcast against the objects.

``with_corrections(array, id_sf=binding, ...)`` returns the same array with a behavior
in which the record type (and its array type) are subclasses of the ones it had
(coffea's ``Muon``, ``Jet``…, or plain records) with one property or method per binding.
Like ``vector.register_awkward()``, nothing is registered unless you ask, and here
only on the arrays you ask for: the global ``ak.behavior`` is never changed.
Selections and slices of the returned array keep the behavior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import awkward as ak

from ..errors import InvalidArgumentError

__all__ = ["Argument", "Binding", "argument", "with_corrections"]

_REQUIRED = object()


@dataclass(frozen=True)
class Argument:
    """An input the caller passes to the behavior's method (see ``argument``)."""

    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def argument(default: Any = _REQUIRED) -> Argument:
    """Leave an input to the caller of the behavior (a method argument, by position in
    input order or by the input's name), with an optional default."""
    return Argument(default)


def _inputs_of(correction: Any) -> list[tuple[str, str]]:
    """(name, type) of what ``correction.evaluate`` takes, in order."""
    if hasattr(correction, "interpolation"):  # a NuisanceCorrection: θ first
        return [("theta", "real"), *((v.name, v.type) for v in correction.inputs)]
    return [(v.name, v.type) for v in correction.inputs]


class Binding:
    """A correction and where each of its inputs comes from (see the module docstring)."""

    def __init__(self, correction: Any, **sources: Any):
        self.correction = correction
        self.signature = _inputs_of(correction)
        names = [name for name, _ in self.signature]
        unknown = [name for name in sources if name not in names]
        missing = [name for name in names if name not in sources]
        if unknown or missing:
            raise InvalidArgumentError(
                f"binding of {getattr(correction, 'name', correction)!r}: every input needs a "
                f"source (inputs: {names}); unknown {unknown}, missing {missing}"
            )
        for (name, kind), source in zip(self.signature, (sources[n] for n in names), strict=True):
            if isinstance(source, str) and kind != "string" and not source:
                raise InvalidArgumentError(f"input {name!r}: an empty field name")
        self.sources = {name: sources[name] for name in names}

    @property
    def arguments(self) -> list[str]:
        """The inputs left to the caller, in input order."""
        return [name for name, source in self.sources.items() if isinstance(source, Argument)]

    def __repr__(self) -> str:
        return f"<corrax.awkward.Binding {getattr(self.correction, 'name', '?')}: {self.sources}>"

    def evaluate(self, record: Any, *args: Any, **kwargs: Any) -> Any:
        """The correction for ``record`` (an array of records, or one record)."""
        given = dict(zip(self.arguments, args, strict=False))
        if len(args) > len(self.arguments):
            raise InvalidArgumentError(
                f"{self!r} takes {len(self.arguments)} arguments {self.arguments}, got {len(args)}"
            )
        for key, value in kwargs.items():
            if key not in self.arguments or key in given:
                raise InvalidArgumentError(
                    f"{self!r}: unexpected or repeated argument {key!r} "
                    f"(arguments: {self.arguments})"
                )
            given[key] = value
        values = []
        for (name, kind), source in zip(self.signature, self.sources.values(), strict=True):
            values.append(self._value(record, name, kind, source, given))
        return self.correction.evaluate(*values)

    def _value(self, record: Any, name: str, kind: str, source: Any, given: dict) -> Any:
        if isinstance(source, Argument):
            if name in given:
                return given[name]
            if source.required:
                raise InvalidArgumentError(f"{self!r}: argument {name!r} is required")
            return source.default
        if callable(source):
            return source(record)
        if isinstance(source, str) and kind != "string":
            return record[source]
        return source


def _record_name(layout: ak.contents.Content) -> str | None:
    while True:
        if isinstance(layout, ak.contents.RecordArray):
            return layout.parameter("__record__")
        content = getattr(layout, "content", None)
        if content is None:
            return None
        layout = content


def _attribute(binding: Binding) -> Any:
    if not binding.arguments:
        return property(binding.evaluate)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return binding.evaluate(self, *args, **kwargs)

    method.__doc__ = f"{binding!r}; arguments: {binding.arguments}"
    return method


def with_corrections(array: ak.Array, **bindings: Binding | Callable[..., Any]) -> ak.Array:
    """``array`` (of records with a name, e.g. ``events.Muon``) with one behavior
    attribute per binding: a property, or a method when the binding has arguments.

    Returns a new array; ``array``, its behavior and ``ak.behavior`` are unchanged.
    """
    name = _record_name(array.layout)
    if name is None:
        raise InvalidArgumentError(
            "with_corrections needs an array of named records (ak.zip(..., with_name='Muon'), "
            "or a NanoEvents collection)"
        )
    for attribute, binding in bindings.items():
        if not isinstance(binding, Binding):
            raise InvalidArgumentError(f"{attribute!r}: expected a corrax.awkward.Binding")
    behavior: dict[Any, Any] = {**ak.behavior, **(array.behavior or {})}
    attributes: dict[str, Any] = {"__module__": __name__}
    attributes.update({attribute: _attribute(binding) for attribute, binding in bindings.items()})
    record_base = behavior.get(name, ak.Record)
    array_base = behavior.get(("*", name), ak.Array)
    behavior[name] = type(record_base.__name__, (record_base,), attributes)
    behavior[("*", name)] = type(array_base.__name__, (array_base,), attributes)
    return ak.Array(array, behavior=behavior)

"""A jagged collection as a JAX pytree, for ``jax.jit``.

awkward arrays cannot enter ``jax.jit`` (awkward needs concrete offsets). A
``Jagged`` holds the same data as flat arrays: one flat array per field, the event
index of each object and its index within its event, all padded to a fixed capacity,
so that a jitted analysis sees fixed shapes. Everything per event is a segment
operation over the event index (``jax.ops.segment_*``).

* ``Jagged.from_awkward(events.Jet, fields=[...])`` builds it outside ``jit``; object
  and event capacities are rounded up to one of 8 sizes per power of two (at least
  256), so chunks of varying size compile a few times per doubling, not once per chunk.
* elementwise math: plain ``jax.numpy`` on ``jets["pt"]`` (shape ``[capacity]``);
  event-level columns to objects: ``jets.broadcast(rho)``;
* per event: ``sum``, ``prod``, ``max``, ``argmax``, ``count`` (shape ``[event capacity]``);
* masks keep shapes: a selection is a weight (0/1, or a soft sigmoid) passed to the
  reductions, never a change of shape;
* ``first(values, n)``: the first ``n`` objects of each event, padded
  (``[event capacity, n]``);
* ``combinations(k)``: index arrays of every k-combination within each event,
  precomputed from the counts on the host (``Combinations``); per-combination sums
  (``total``), and one combination per event by a key (``best`` → ``Chosen``, whose
  objects then carry the gradient; ``select_best`` for per-combination values);
* ``to_awkward(values)``: back to an ``ak.Array`` with the original counts.

Event indices are sorted (objects of one event are contiguous, padding last), which
the segment operations are told. Padded objects repeat the first object's values (so that corrections and functions
stay finite there, and gradients too), belong to no event (their event index is the
number of event slots, which segment operations drop) and have ``valid`` False.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Chosen", "Combinations", "Jagged", "capacity_for"]

MIN_CAPACITY = 256


def capacity_for(n: int) -> int:
    """The padded size for ``n`` items, at least 256: ``n`` rounded up to one of 8
    steps per power of two (at most 12.5 % padding; chunks of varying size compile at
    most 8 times per doubling of their size)."""
    if n <= MIN_CAPACITY:
        return MIN_CAPACITY
    step = 1 << max((n - 1).bit_length() - 4, 0)
    return -(-n // step) * step


@jax.tree_util.register_pytree_node_class
class Jagged:
    """Objects of a batch of events (see the module docstring).

    ``fields``: name → float array ``[capacity]``; ``event``: int32 ``[capacity]``
    (``n_event_slots`` for padding); ``local``: int32 index within the event;
    ``counts``: int32 ``[n_event_slots]``; ``n_objects``/``n_events``: the real sizes.
    """

    def __init__(self, fields, event, local, counts, n_objects: int, n_events: int):
        self.fields = dict(fields)
        self.event = event
        self.local = local
        self.counts = counts
        self.n_objects = n_objects
        self.n_events = n_events

    def tree_flatten(self):
        # the sizes are leaves, not static: chunks of other sizes but the same
        # capacities reuse one compilation
        names = tuple(sorted(self.fields))
        values = tuple(self.fields[n] for n in names)
        leaves = (values, self.event, self.local, self.counts, self.n_objects, self.n_events)
        return leaves, names

    @classmethod
    def tree_unflatten(cls, names, leaves):
        values, event, local, counts, n_objects, n_events = leaves
        return cls(dict(zip(names, values, strict=True)), event, local, counts, n_objects, n_events)

    @classmethod
    def from_awkward(
        cls,
        array: ak.Array,
        fields: Sequence[str] | None = None,
        object_capacity: int | None = None,
        event_capacity: int | None = None,
    ) -> Jagged:
        """From a jagged array of records (``events.Jet``) or of numbers (one field,
        named "value"), on the host. Float fields become the default float dtype."""
        counts = np.asarray(ak.num(array, axis=1), dtype=np.int32)
        n_events, n_objects = len(counts), int(counts.sum())
        event_slots = event_capacity or capacity_for(n_events)
        slots = object_capacity or capacity_for(n_objects)
        if n_events > event_slots or n_objects > slots:
            raise ValueError("capacity smaller than the collection")
        event = np.full(slots, event_slots, dtype=np.int32)
        event[:n_objects] = np.repeat(np.arange(n_events, dtype=np.int32), counts)
        local = np.zeros(slots, dtype=np.int32)
        starts = np.cumsum(counts) - counts
        local[:n_objects] = np.arange(n_objects, dtype=np.int32) - np.repeat(starts, counts)
        names = list(fields) if fields is not None else (array.fields or ["value"])
        columns = {}
        for name in names:
            column = array[name] if array.fields else array
            flat = ak.to_numpy(ak.flatten(column, axis=1))
            # padding repeats the first object (1 without objects): any correction or
            # function then stays finite there, and so do gradients
            padded = np.full(slots, flat[0] if n_objects else 1, dtype=flat.dtype)
            padded[:n_objects] = flat
            columns[name] = jnp.asarray(padded, dtype=_dtype(flat.dtype))
        padded_counts = np.zeros(event_slots, dtype=np.int32)
        padded_counts[:n_events] = counts
        return cls(
            columns,
            jnp.asarray(event),
            jnp.asarray(local),
            jnp.asarray(padded_counts),
            n_objects,
            n_events,
        )

    # fields and elementwise helpers
    def __getitem__(self, name: str) -> jax.Array:
        return self.fields[name]

    def with_field(self, name: str, values: jax.Array) -> Jagged:
        """A copy with field ``name`` set to ``values`` (shape ``[capacity]``)."""
        return Jagged(
            {**self.fields, name: values},
            self.event,
            self.local,
            self.counts,
            self.n_objects,
            self.n_events,
        )

    @property
    def capacity(self) -> int:
        return self.event.shape[0]

    @property
    def event_slots(self) -> int:
        return self.counts.shape[0]

    @property
    def valid(self) -> jax.Array:
        """True for real objects, False for padding (``[capacity]``)."""
        return self.event < self.event_slots

    def broadcast(self, per_event: jax.Array) -> jax.Array:
        """An event-level column (``[event slots]``) repeated for each object."""
        return jnp.take(per_event, self.event, mode="fill", fill_value=0)

    # per-event reductions
    def sum(self, values: jax.Array, weight: jax.Array | None = None) -> jax.Array:
        """Σ over each event's objects of ``values`` (times ``weight``)."""
        if weight is not None:
            values = values * weight
        return jax.ops.segment_sum(
            values, self.event, num_segments=self.event_slots, indices_are_sorted=True
        )

    def count(self, weight: jax.Array | None = None) -> jax.Array:
        """Objects per event (Σ of ``weight`` if given: a soft count)."""
        ones = jnp.where(self.valid, 1.0, 0.0)
        return self.sum(ones if weight is None else ones * weight)

    def prod(self, values: jax.Array, weight: jax.Array | None = None) -> jax.Array:
        """Π over each event's objects; 1 for an event without objects. With a
        ``weight`` w in [0, 1], each factor is w·value + (1 − w) (1 when deselected)."""
        if weight is not None:
            values = weight * values + (1.0 - weight)
        return jax.ops.segment_prod(
            values, self.event, num_segments=self.event_slots, indices_are_sorted=True
        )

    def max(self, values: jax.Array, where: jax.Array | None = None) -> jax.Array:
        """Largest value per event (-inf for none); ``where`` selects objects."""
        if where is not None:
            values = jnp.where(where, values, -jnp.inf)
        return jax.ops.segment_max(
            values, self.event, num_segments=self.event_slots, indices_are_sorted=True
        )

    def argmax(self, values: jax.Array, where: jax.Array | None = None) -> jax.Array:
        """Flat index of each event's largest value (the first if tied; ``capacity``
        for events without objects), without gradient. A NaN value wins (see
        ``Combinations.argbest``)."""
        values = jax.lax.stop_gradient(values)
        best = self.broadcast(self.max(values, where))
        hit = ((values == best) | (jnp.isnan(values) & jnp.isnan(best))) & self.valid
        if where is not None:
            hit = hit & where
        index = jnp.where(hit, jnp.arange(self.capacity), self.capacity)
        first = jax.ops.segment_min(
            index, self.event, num_segments=self.event_slots, indices_are_sorted=True
        )
        return jnp.minimum(first, self.capacity)  # an empty segment's minimum is the int max

    def first(self, values: jax.Array, n: int, fill: float = 0.0) -> jax.Array:
        """The first ``n`` objects' values of each event: ``[event slots, n]``, padded."""
        out = jnp.full((self.event_slots, n), fill, dtype=values.dtype)
        rows = jnp.where(self.local < n, self.event, self.event_slots)  # out of range: dropped
        return out.at[rows, jnp.minimum(self.local, n - 1)].set(values, mode="drop")

    def combinations(self, k: int) -> Combinations:
        """Every k-combination of objects within each event (on the host, outside jit)."""
        counts = np.asarray(self.counts)[: int(self.n_events)]
        return Combinations.build(counts, k, self.event_slots)

    def to_awkward(self, values: jax.Array) -> ak.Array:
        """``values`` (``[capacity]``) as an ``ak.Array`` with this collection's counts."""
        counts = np.asarray(self.counts)[: int(self.n_events)]
        return ak.unflatten(np.asarray(values)[: int(self.n_objects)], counts)


@jax.tree_util.register_pytree_node_class
class Combinations:
    """k-combinations within events: ``index`` int32 ``[slots, k]`` (flat object
    indices, ascending within a combination), ``event`` int32 ``[slots]`` (padding:
    the number of event slots)."""

    def __init__(self, index, event, event_slots: int, n: int):
        self.index = index
        self.event = event
        self.event_slots = event_slots
        self.n = n

    def tree_flatten(self):
        return (self.index, self.event, self.n), self.event_slots

    @classmethod
    def tree_unflatten(cls, event_slots, leaves):
        index, event, n = leaves
        return cls(index, event, event_slots, n)

    @classmethod
    def build(cls, counts: np.ndarray, k: int, event_slots: int) -> Combinations:
        starts = np.cumsum(counts) - counts
        pieces, events = [], []
        for m in np.unique(counts):
            if m < k:
                continue
            which = np.flatnonzero(counts == m)
            local = _local_combinations(int(m), k)  # [C_m, k]
            pieces.append((starts[which][:, None, None] + local[None]).reshape(-1, k))
            events.append(np.repeat(which, len(local)))
        index = np.concatenate(pieces) if pieces else np.zeros((0, k), dtype=np.int64)
        event = np.concatenate(events) if events else np.zeros(0, dtype=np.int64)
        order = np.argsort(event, kind="stable")
        index, event = index[order], event[order]
        slots = capacity_for(len(event))
        padded_index = np.zeros((slots, k), dtype=np.int32)
        padded_index[: len(index)] = index
        padded_event = np.full(slots, event_slots, dtype=np.int32)
        padded_event[: len(event)] = event
        return cls(jnp.asarray(padded_index), jnp.asarray(padded_event), event_slots, len(event))

    @property
    def valid(self) -> jax.Array:
        return self.event < self.event_slots

    def take(self, values: jax.Array) -> jax.Array:
        """Per-object ``values`` gathered per combination: ``[slots, k]``."""
        return jnp.stack(self._columns(values), axis=-1)

    def total(self, values: jax.Array) -> jax.Array:
        """Per-object ``values`` summed over each combination's objects: ``[slots]``."""
        return functools.reduce(operator.add, self._columns(values))

    def _columns(self, values: jax.Array) -> list[jax.Array]:
        # one 1-D gather per position: XLA on CPU runs these ~5× faster than one
        # gather with [slots, k] indices (and their transposes ~4× faster)
        return [values[self.index[:, i]] for i in range(self.index.shape[1])]

    def max(self, values: jax.Array) -> jax.Array:
        return jax.ops.segment_max(
            jnp.where(self.valid, values, -jnp.inf),
            self.event,
            num_segments=self.event_slots,
            indices_are_sorted=True,
        )

    def argbest(self, key: jax.Array) -> jax.Array:
        """Per event, the slot of the combination with the largest ``key`` (the first
        if tied; the number of slots for events without combinations):
        ``[event slots]``, without gradient. A NaN key (a failed correction under
        ``jit``) wins, so that NaN reaches the event's result instead of being hidden."""
        key = jax.lax.stop_gradient(key)
        best = jnp.take(self.max(key), self.event, mode="fill", fill_value=0)
        hit = self.valid & ((key == best) | (jnp.isnan(key) & jnp.isnan(best)))
        slots = len(self.event)
        slot = jnp.where(hit, jnp.arange(slots), slots)
        first = jax.ops.segment_min(
            slot, self.event, num_segments=self.event_slots, indices_are_sorted=True
        )
        return jnp.minimum(first, slots)  # an empty segment's minimum is the int max

    def best(self, key: jax.Array) -> Chosen:
        """Per event, the objects of the combination with the largest ``key`` (see
        ``argbest``), as a ``Chosen``: compute what is needed of it from per-object
        values (``Chosen.total``, ``kinematics.combination_p4(chosen, ...)``). Gradients
        then flow through the k chosen objects of each event only, not through every
        combination: the fast way to "the mass of the highest-pt trijet"."""
        slot = self.argbest(key)
        found = slot < len(self.event)
        index = jnp.take(self.index, jnp.minimum(slot, len(self.event) - 1), axis=0)
        return Chosen(index, found)

    def select_best(self, key: jax.Array, values: jax.Array) -> jax.Array:
        """Per event, ``values`` (``[slots]``, one per combination) of the combination
        with the largest ``key`` (the first if tied; 0 for events without
        combinations). Gradients flow through ``values``, not through the choice; when
        ``values`` derive from per-object values, ``best(key)`` is faster."""
        if jnp.ndim(values) != 1:
            raise ValueError(f"values: one per combination, shape [slots]; got {jnp.shape(values)}")
        slot = self.argbest(key)
        picked = jnp.take(values, jnp.minimum(slot, len(self.event) - 1), axis=0)
        return jnp.where(slot < len(self.event), picked, 0.0)


@jax.tree_util.register_pytree_node_class
class Chosen:
    """One k-combination per event (``Combinations.best``): ``index`` int32
    ``[event slots, k]`` (flat object indices), ``found`` bool ``[event slots]`` (False
    for events without combinations: their values are 0)."""

    def __init__(self, index, found):
        self.index = index
        self.found = found

    def tree_flatten(self):
        return (self.index, self.found), None

    @classmethod
    def tree_unflatten(cls, _, leaves):
        return cls(*leaves)

    def take(self, values: jax.Array) -> jax.Array:
        """Per-object ``values`` of the chosen objects: ``[event slots, k]``."""
        return jnp.where(self.found[:, None], values[self.index], 0.0)

    def total(self, values: jax.Array) -> jax.Array:
        """Per-object ``values`` summed over the chosen objects: ``[event slots]``."""
        return self.take(values).sum(axis=1)


@functools.cache
def _local_combinations(m: int, k: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(m), k)), dtype=np.int64).reshape(-1, k)


def _dtype(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return jnp.result_type(float)
    if dtype.kind == "b":
        return bool
    return jnp.result_type(int)

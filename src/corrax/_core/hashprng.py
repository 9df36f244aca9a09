"""correctionlib's HashPRNG node in JAX, bit for bit.

correctionlib (``HashPRNG::evaluate`` in ``src/correction.cc``) turns its inputs into
pseudo-random numbers in four steps:

1. each input becomes one little-endian 64-bit lane: an ``int`` is cast to
   ``uint64``, a ``real`` contributes the raw bit pattern of its ``double``;
2. the lanes are hashed with XXH64 (seed 0);
3. the hash seeds a ``pcg32_oneseq`` engine from pcg-cpp;
4. the engine feeds a distribution: libstdc++'s ``uniform_real_distribution<double>``
   (``stdflat``), libstdc++'s ``normal_distribution<double>`` (``stdnormal``) or
   correctionlib's own Marsaglia polar loop (``normal``).

No library provides these generators in JAX: ``jax.random`` has its own
counter-based generators and cannot reproduce XXH64, PCG or libstdc++'s
distributions. So each piece is written out here with ``uint64`` and ``float64``
array operations: jax.numpy, which run under ``jit`` and ``vmap`` on every backend,
or NumPy for eager calls on the host (see ``backend``), which computes the same bits.

Two details make bit-identity hold. XLA fuses a multiply followed by an add into one
fused multiply-add, which rounds once where the C++ code rounds twice; the squares of
the polar methods are therefore computed with integers and rounded explicitly
(``_square``), and every other product that meets an addition is exact. The
logarithm is the backend's: on CPU, XLA's ``log`` was found to agree with glibc's,
which is what correctionlib calls; a GPU's ``log`` may differ from it in the last bit.
On the host the logarithm is glibc's itself (``math.log``), as NumPy's vectorised
``log`` need not round like it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..errors import InvalidDocumentError, PrecisionError
from .backend import namespace

_DISTRIBUTIONS = ("stdflat", "stdnormal", "normal")

_MASK64 = (1 << 64) - 1

# XXH64 primes (xxhash.h).
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5

# pcg-cpp's default 64-bit LCG constants.
_PCG_MULTIPLIER = 6364136223846793005
_PCG_INCREMENT = 1442695040888963407

# The largest double below 1: libstdc++'s generate_canonical returns it for a sum
# that rounded up to 1.
_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def _u64(value: int) -> np.uint64:
    """A uint64 constant, reduced modulo 2**64."""
    return np.uint64(value & _MASK64)


def _bitcast(x, dtype):
    """The bits of ``x`` read as ``dtype`` (of the same width)."""
    if namespace(x) is np:
        return np.asarray(x).view(dtype)
    return lax.bitcast_convert_type(x, dtype)


def _rotl64(x: jax.Array, r: int) -> jax.Array:
    return (x << _u64(r)) | (x >> _u64(64 - r))


# --- XXH64 ------------------------------------------------------------------------


def _xxh64_round(acc: jax.Array | np.uint64, lane: jax.Array) -> jax.Array:
    return _rotl64(acc + lane * _u64(_P2), 31) * _u64(_P1)


def _xxh64_merge_round(acc: jax.Array, val: jax.Array) -> jax.Array:
    return (acc ^ _xxh64_round(_u64(0), val)) * _u64(_P1) + _u64(_P4)


def _xxh64_avalanche(h: jax.Array) -> jax.Array:
    h = (h ^ (h >> _u64(33))) * _u64(_P2)
    h = (h ^ (h >> _u64(29))) * _u64(_P3)
    return h ^ (h >> _u64(32))


def _xxh64(lanes: Sequence[jax.Array]) -> jax.Array:
    """XXH64 with seed 0 of the bytes of ``lanes``, each a little-endian uint64."""
    n_bytes = 8 * len(lanes)
    n_striped = 4 * (len(lanes) // 4)  # lanes consumed by 32-byte stripes
    if n_striped:
        acc = [_u64(_P1 + _P2), _u64(_P2), _u64(0), _u64(-_P1)]
        for start in range(0, n_striped, 4):
            acc = [_xxh64_round(a, lanes[start + j]) for j, a in enumerate(acc)]
        h = _rotl64(acc[0], 1) + _rotl64(acc[1], 7) + _rotl64(acc[2], 12) + _rotl64(acc[3], 18)
        for a in acc:
            h = _xxh64_merge_round(h, a)
    else:
        xp = namespace(*lanes)
        h = xp.full(xp.shape(lanes[0]), _u64(_P5))
    h = h + _u64(n_bytes)
    for lane in lanes[n_striped:]:
        h = h ^ _xxh64_round(_u64(0), lane)
        h = _rotl64(h, 27) * _u64(_P1) + _u64(_P4)
    return _xxh64_avalanche(h)


# --- pcg32_oneseq (pcg_engines::oneseq_xsh_rr_64_32) ---------------------------------


def _pcg32_seed(seed: jax.Array) -> jax.Array:
    """The state after ``engine::seed(seed)``: one LCG step from ``seed + increment``."""
    return (seed + _u64(_PCG_INCREMENT)) * _u64(_PCG_MULTIPLIER) + _u64(_PCG_INCREMENT)


def _pcg32_output(state: jax.Array) -> jax.Array:
    """The XSH-RR output permutation: a xorshift, then a rotation by the top 5 bits."""
    rotation = (state >> _u64(59)).astype(np.uint32)
    xorshifted = (((state >> _u64(18)) ^ state) >> _u64(27)).astype(np.uint32)
    return (xorshifted >> rotation) | (xorshifted << ((-rotation) & np.uint32(31)))


def _pcg32_next(state: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``gen()``: the next state and the uint32 output of the *previous* state."""
    return state * _u64(_PCG_MULTIPLIER) + _u64(_PCG_INCREMENT), _pcg32_output(state)


# --- libstdc++ distributions ---------------------------------------------------------


def _generate_canonical(state: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``std::generate_canonical<double, 53>`` on a 32-bit engine: a double in [0, 1).

    libstdc++ takes two draws and computes ``(lo + hi * 2**32) / 2**64`` in double:
    the sum rounds once, to nearest even, exactly like converting the 64-bit integer
    ``hi:lo`` to double; the division by 2**64 is exact.
    """
    state, lo = _pcg32_next(state)
    state, hi = _pcg32_next(state)
    whole = (hi.astype(np.uint64) << _u64(32)) | lo.astype(np.uint64)
    canonical = whole.astype(np.float64) * 2.0**-64
    return state, namespace(state).where(canonical >= 1.0, _BELOW_ONE, canonical)


def _square(x: jax.Array) -> jax.Array:
    """``x * x`` rounded on its own, which XLA's multiply-add fusion would not do.

    The 53-bit significand is squared exactly in integers (106 bits, as a high and a
    low word), cut to its top 64 bits with a sticky bit for the rest, and rounded by
    the uint64-to-double conversion. Valid for zero and for any ``x`` whose square
    is a normal double, as are all the values of the polar method (|x| >= 2**-64).
    """
    bits = _bitcast(x, np.uint64) & _u64(~(1 << 63))
    exponent = (bits >> _u64(52)).astype(np.int64)
    significand = (bits & _u64((1 << 52) - 1)) | _u64(1 << 52)
    high, low = significand >> _u64(32), significand & _u64(0xFFFFFFFF)
    low_sq, cross = low * low, (high * low) << _u64(1)
    low_word = low_sq + (cross << _u64(32))
    carry = (low_word < low_sq).astype(np.uint64)
    high_word = high * high + (cross >> _u64(32)) + carry
    sticky = ((low_word & _u64((1 << 42) - 1)) != 0).astype(np.uint64)
    top = (high_word << _u64(22)) | (low_word >> _u64(42)) | sticky
    # x = significand * 2**(exponent - 1075), so x**2 = top * 2**(2 * exponent - 2108).
    scale_bits = ((2 * exponent - 2108 + 1023) << 52).astype(np.uint64)
    square = top.astype(np.float64) * _bitcast(scale_bits, np.float64)
    return namespace(x).where(bits == 0, 0.0, square)


_Draw = Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]


def _polar_loop(state: jax.Array, draw: _Draw) -> tuple[jax.Array, jax.Array]:
    """Run a rejection loop until every element has accepted a draw.

    ``draw(state)`` returns ``(state, accepted, value, s)`` for one attempt, where an
    accepted ``s`` is never zero; the ``(value, s)`` of each element's first accepted
    attempt are returned. ``s == 0`` marks the elements still trying.
    """
    if namespace(state) is np:
        value, s = np.zeros(state.shape), np.zeros(state.shape)
        while (s == 0.0).any():
            state, accepted, new_value, new_s = draw(state)
            take = accepted & (s == 0.0)
            value, s = np.where(take, new_value, value), np.where(take, new_s, s)
        return value, s
    zeros = jnp.zeros(state.shape, jnp.float64)

    def pending(carry: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        return jnp.any(carry[2] == 0.0)

    def attempt(carry: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, ...]:
        state, value, s = carry
        state, accepted, new_value, new_s = draw(state)
        take = accepted & (s == 0.0)
        return state, jnp.where(take, new_value, value), jnp.where(take, new_s, s)

    _, value, s = lax.while_loop(pending, attempt, (state, zeros, zeros))
    return value, s


def _std_normal_draw(state: jax.Array) -> tuple[jax.Array, ...]:
    """One attempt of libstdc++'s ``normal_distribution``: x, y uniform in [-1, 1).

    libstdc++ returns ``y * factor`` and keeps ``x * factor`` for its next call, which
    a fresh distribution never makes, so only ``y`` is kept.
    """
    state, cx = _generate_canonical(state)
    state, cy = _generate_canonical(state)
    # 2 * c is exact, so a fused multiply-add here rounds exactly like the C++ code.
    x, y = 2.0 * cx - 1.0, 2.0 * cy - 1.0
    r2 = _square(x) + _square(y)
    return state, (r2 <= 1.0) & (r2 != 0.0), y, r2


def _correctionlib_normal_draw(state: jax.Array) -> tuple[jax.Array, ...]:
    """One attempt of correctionlib's polar loop: ``u = ldexp(gen(), -31) - 1``.

    With ``a = gen() - 2**31``, ``u = a / 2**31`` exactly and ``u * u`` is ``a * a``
    (exact in int64) rounded to double and scaled by 2**-62. Only ``u`` is kept.
    """
    state, gu = _pcg32_next(state)
    state, gv = _pcg32_next(state)
    a = gu.astype(np.int64) - (1 << 31)
    b = gv.astype(np.int64) - (1 << 31)
    s = ((a * a).astype(np.float64) + (b * b).astype(np.float64)) * 2.0**-62
    return state, (s < 1.0) & (s != 0.0), a.astype(np.float64) * 2.0**-31, s


_glibc_log = np.vectorize(math.log, otypes=[np.float64])


def _polar_factor(s: jax.Array) -> jax.Array:
    if namespace(s) is np:
        return np.sqrt(-2.0 * _glibc_log(s) / s)
    return jnp.sqrt(-2.0 * jnp.log(s) / s)


# --- entry point ---------------------------------------------------------------------


def _seed_lanes(seed_inputs: Sequence[jax.Array]) -> list[jax.Array]:
    """The uint64 lanes correctionlib hashes: int bits or the raw double bits."""
    xp = namespace(*seed_inputs)
    arrays = xp.broadcast_arrays(*(xp.asarray(x) for x in seed_inputs))
    lanes = []
    for i, x in enumerate(arrays):
        if np.issubdtype(x.dtype, np.integer):
            lanes.append(_bitcast(x.astype(np.int64), np.uint64))
        elif np.issubdtype(x.dtype, np.floating):
            real = x if xp is np else lax.stop_gradient(x)
            lanes.append(_bitcast(real.astype(np.float64), np.uint64))
        else:
            raise TypeError(
                f"HashPRNG seed input {i} has dtype {x.dtype}; expected int64 or float64"
            )
    return lanes


def hashprng(seed_inputs: Sequence[jax.Array], distribution: str) -> jax.Array:
    """Deterministic pseudo-random numbers bit-identical to correctionlib's HashPRNG node.

    ``seed_inputs`` are the node's inputs in order, int64 for ``int`` variables and
    float64 for ``real`` ones, all of one shape (they are broadcast if not).
    ``distribution`` is ``"stdflat"``, ``"stdnormal"`` or ``"normal"``. Returns float64
    values of that shape, without gradient. With JAX arrays it needs JAX's 64-bit
    mode; with NumPy arrays (host evaluation) it returns NumPy values.
    """
    if distribution not in _DISTRIBUTIONS:
        raise InvalidDocumentError(
            f"unknown HashPRNG distribution {distribution!r}; "
            f"expected one of {', '.join(map(repr, _DISTRIBUTIONS))}"
        )
    host = namespace(*seed_inputs) is np  # NumPy: 64-bit whatever JAX's mode
    if not host and not jax.config.jax_enable_x64:
        raise PrecisionError(
            "HashPRNG needs 64-bit integers (it hashes the inputs' 64-bit patterns), "
            "but JAX's 64-bit mode is off. Enable it with "
            'jax.config.update("jax_enable_x64", True) at startup, or evaluate inside '
            "`with jax.enable_x64(True):`."
        )
    if len(seed_inputs) == 0:
        raise InvalidDocumentError("HashPRNG needs at least one seed input")

    state = _pcg32_seed(_xxh64(_seed_lanes(seed_inputs)))
    if distribution == "stdflat":
        _, value = _generate_canonical(state)
    elif distribution == "stdnormal":
        y, r2 = _polar_loop(state, _std_normal_draw)
        value = y * _polar_factor(r2)
    else:
        u, s = _polar_loop(state, _correctionlib_normal_draw)
        value = u * _polar_factor(s)
    return value if host else lax.stop_gradient(value)

"""corrax's HashPRNG against correctionlib's own evaluator, bit for bit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import correctionlib
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corrax._core.hashprng import hashprng

DISTRIBUTIONS = ["stdflat", "stdnormal", "normal"]
N_VALUES = 12_000

# Variable types of the node's inputs: 1 to 3 lanes hash below one 32-byte stripe,
# 4 and 8 are whole stripes, 5, 7 and 9 are stripes plus a tail.
SIGNATURES = [
    ("int",),
    ("real",),
    ("real", "int"),
    ("real", "real", "int"),
    ("int", "real", "int", "real"),
    ("real", "int", "real", "real", "int"),
    ("int", "int", "real", "int", "real", "real", "int"),
    ("real", "int", "int", "real", "real", "int", "real", "int"),
    ("int", "real", "real", "int", "real", "int", "int", "real", "real"),
]


@pytest.fixture(autouse=True)
def _x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


def _evaluator(distribution: str, types: tuple[str, ...]) -> correctionlib.Correction:
    names = [f"x{i}" for i in range(len(types))]
    doc = {
        "schema_version": 2,
        "corrections": [
            {
                "name": "r",
                "version": 1,
                "inputs": [{"name": n, "type": t} for n, t in zip(names, types, strict=True)],
                "output": {"name": "o", "type": "real"},
                "data": {"nodetype": "hashprng", "inputs": names, "distribution": distribution},
            }
        ],
    }
    return correctionlib.CorrectionSet.from_string(json.dumps(doc))["r"]


def _from_bits(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.uint64).view(np.float64)


def _random_ints(rng: np.random.Generator, n: int) -> np.ndarray:
    info = np.iinfo(np.int64)
    special = np.array([0, 1, -1, 2, -2, info.min, info.max, 2**32, -(2**32), 2**53 + 1])
    third = n // 3
    values = np.concatenate(
        [
            special,
            rng.integers(-1000, 1000, third),
            rng.integers(-(2**40), 2**40, third),
            rng.integers(info.min, info.max, n - 2 * third - special.size, endpoint=True),
        ]
    ).astype(np.int64)
    return rng.permutation(values)


def _random_reals(rng: np.random.Generator, n: int) -> np.ndarray:
    special = np.concatenate(
        [
            [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5],
            [5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e300],
            _from_bits(0x7FF0000000000001, 0xFFF8000000000123, 0x7FFFFFFFFFFFFFFF),
        ]
    )
    quarter = n // 4
    values = np.concatenate(
        [
            special,
            rng.normal(50.0, 30.0, quarter),  # physics-like: pt, eta, ...
            rng.integers(-100, 100, quarter).astype(np.float64),
            rng.choice([-1.0, 1.0], quarter) * 10.0 ** rng.uniform(-320, 308, quarter),
            rng.integers(0, 2**64, n - 3 * quarter - special.size, dtype=np.uint64).view(
                np.float64
            ),  # any bit pattern: NaN payloads, subnormals, infinities
        ]
    )
    return rng.permutation(values)


def _random_inputs(types: tuple[str, ...], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_random_ints(rng, n) if t == "int" else _random_reals(rng, n) for t in types]


def _assert_bits_equal(actual: jax.Array, expected: np.ndarray) -> None:
    actual = np.asarray(actual)
    assert actual.dtype == np.float64
    np.testing.assert_array_equal(actual.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("types", SIGNATURES, ids="-".join)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_matches_correctionlib(distribution: str, types: tuple[str, ...]) -> None:
    inputs = _random_inputs(types, N_VALUES, seed=len(types) + 10 * types.count("int"))
    expected = _evaluator(distribution, types).evaluate(*inputs)
    assert np.isfinite(expected).all()
    _assert_bits_equal(hashprng([jnp.asarray(x) for x in inputs], distribution), expected)


@pytest.mark.parametrize("types", SIGNATURES, ids="-".join)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_numpy_matches_correctionlib(distribution: str, types: tuple[str, ...]) -> None:
    """The host evaluation (NumPy arrays in, NumPy out) computes the same bits."""
    inputs = _random_inputs(types, N_VALUES, seed=len(types) + 10 * types.count("int"))
    expected = _evaluator(distribution, types).evaluate(*inputs)
    with np.errstate(all="ignore"):  # as the dispatcher evaluates: NaN/inf inputs
        actual = hashprng(list(inputs), distribution)
    assert isinstance(actual, np.ndarray)
    _assert_bits_equal(actual, expected)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_jit_matches_correctionlib(distribution: str) -> None:
    types = SIGNATURES[5]
    inputs = _random_inputs(types, N_VALUES, seed=1)
    expected = _evaluator(distribution, types).evaluate(*inputs)
    jitted = jax.jit(lambda *xs: hashprng(xs, distribution))
    _assert_bits_equal(jitted(*inputs), expected)
    _assert_bits_equal(jitted(*(x[:7] for x in inputs)), expected[:7])
    _assert_bits_equal(jitted(*(x[0] for x in inputs)), expected[:1].reshape(()))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_vmap_matches_correctionlib(distribution: str) -> None:
    types = ("real", "int", "real")
    batched, shared, other = _random_inputs(types, N_VALUES, seed=2)
    batched = batched.reshape(120, 100)
    shared = shared[:100]
    other = other.reshape(120, 100)
    expected = _evaluator(distribution, types).evaluate(
        batched.ravel(), np.tile(shared, 120), other.ravel()
    )

    def per_row(a: jax.Array, i: jax.Array, b: jax.Array) -> jax.Array:
        return hashprng([a, i, b], distribution)

    result = jax.vmap(per_row, in_axes=(0, None, 0))(batched, shared, other)
    _assert_bits_equal(result.ravel(), expected)
    result = jax.jit(jax.vmap(per_row, in_axes=(0, None, 0)))(batched, shared, other)
    _assert_bits_equal(result.ravel(), expected)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_no_gradient(distribution: str) -> None:
    x = jnp.linspace(-3.0, 3.0, 50)
    i = jnp.arange(50, dtype=jnp.int64)
    grad = jax.grad(lambda x: hashprng([x, i], distribution).sum())(x)
    np.testing.assert_array_equal(np.asarray(grad), np.zeros(50))


# The >= 1 fix-up of generate_canonical happens with probability 2**-54 per draw, so
# it is reached by running the generators backwards: a pcg32 state whose two outputs
# round to 2**64, the seed leading to it, and an int whose XXH64 is that seed.

_M64 = (1 << 64) - 1
_PCG_MULT = 6364136223846793005
_PCG_INC = 1442695040888963407
_XXH_P1 = 0x9E3779B185EBCA87
_XXH_P2 = 0xC2B2AE3D27D4EB4F
_XXH_P3 = 0x165667B19E3779F9
_XXH_P4 = 0x85EBCA77C2B2AE63
_XXH_P5 = 0x27D4EB2F165667C5


def _inverse(odd: int) -> int:
    return pow(odd, -1, 1 << 64)


def _rotr(x: int, r: int) -> int:
    return ((x >> r) | (x << (64 - r))) & _M64


def _pcg_output(state: np.ndarray) -> np.ndarray:
    rotation = (state >> np.uint64(59)).astype(np.uint32)
    xorshifted = (((state >> np.uint64(18)) ^ state) >> np.uint64(27)).astype(np.uint32)
    return (xorshifted >> rotation) | (xorshifted << ((np.uint32(32) - rotation) & np.uint32(31)))


def _state_whose_canonical_rounds_to_one() -> int:
    low_bits = np.arange(1 << 24, dtype=np.uint64)
    for rotation in range(32):
        # The second output must be 0xFFFFFFFF: xorshift bits 27..58 all one.
        high = rotation << 59
        for i in range(58, 26, -1):
            high |= (1 ^ ((high >> (i + 18)) & 1)) << i
        second = np.uint64(high) | low_bits
        first = (second - np.uint64(_PCG_INC)) * np.uint64(_inverse(_PCG_MULT))
        (found,) = np.nonzero(_pcg_output(first) >= 2**32 - 2**10)
        if found.size:
            return int(first[found[0]])
    raise AssertionError("no state found")


def _int_hashing_to(h: int) -> int:
    """The 8-byte input whose XXH64 (seed 0) is ``h``: every step is invertible."""
    h ^= h >> 32
    h = h * _inverse(_XXH_P3) & _M64
    h ^= (h >> 29) ^ (h >> 58)
    h = h * _inverse(_XXH_P2) & _M64
    h ^= h >> 33
    k1 = _rotr((h - _XXH_P4) * _inverse(_XXH_P1) & _M64, 27) ^ (_XXH_P5 + 8)
    lane = _rotr(k1 * _inverse(_XXH_P1) & _M64, 31) * _inverse(_XXH_P2) & _M64
    return lane - (1 << 64) if lane >> 63 else lane


def test_canonical_rounding_to_one() -> None:
    state = _state_whose_canonical_rounds_to_one()
    seed = ((state - _PCG_INC) * _inverse(_PCG_MULT) - _PCG_INC) & _M64
    x = np.array([_int_hashing_to(seed), 0, 1], dtype=np.int64)
    for distribution in DISTRIBUTIONS:
        expected = _evaluator(distribution, ("int",)).evaluate(x)
        if distribution == "stdflat":  # the construction reaches the fix-up
            assert expected[0] == np.nextafter(1.0, 0.0)
        _assert_bits_equal(hashprng([jnp.asarray(x)], distribution), expected)
        _assert_bits_equal(hashprng([x], distribution), expected)  # NumPy, on the host


def test_broadcasts_inputs() -> None:
    ints = np.arange(-5, 5, dtype=np.int64)
    expected = _evaluator("stdnormal", ("int", "real")).evaluate(ints, np.full(10, 2.5))
    _assert_bits_equal(hashprng([jnp.asarray(ints), jnp.float64(2.5)], "stdnormal"), expected)


def test_requires_x64() -> None:
    with jax.enable_x64(False):
        with pytest.raises(RuntimeError, match=r"jax_enable_x64.*enable_x64\(True\)"):
            hashprng([jnp.zeros(3)], "stdflat")
        with pytest.raises(RuntimeError, match="64-bit"):
            jax.jit(lambda x: hashprng([x], "normal"))(np.zeros(3, np.float32))


def test_bad_distribution() -> None:
    with pytest.raises(ValueError, match="'gaussian'"):
        hashprng([jnp.zeros(3)], "gaussian")


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        hashprng([], "stdflat")
    with pytest.raises(TypeError, match="bool"):
        hashprng([jnp.zeros(3, bool)], "stdflat")

"""The core: a correction's nodes lowered to static structure plus tables, evaluated
by pure JAX functions. No I/O and no Python work per call."""

"""The core: a correction's nodes lowered to static structure plus tables, evaluated
by pure functions written once against an array library (``backend``): jax.numpy
under ``jit``/``grad``/``vmap``, NumPy for eager calls on the host. No I/O."""

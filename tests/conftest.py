"""Shared pytest configuration.

Silent rank promotion (broadcasting a (n,) against a (n, 1)) hides shape bugs,
so the whole suite runs with ``jax_numpy_rank_promotion='raise'``.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

"""Search spaces as plugins: one interface (:class:`SearchSpace`), one registry, one module
per space. Importing this package registers the built-in spaces.

Adding a space: write a module with a ``SearchSpace`` subclass decorated ``@register_space``
(its constants as class data; readers, record encoder, draw / mutate / look-up, one-hot
features as methods), import it below, and give ``tests/fakes.py::FAKE_SOURCES`` a tiny fake
source for it; ``tests/test_spaces.py`` then runs it through the same checks as the others.
``--bench`` and the config key ``space`` accept it at once.
"""
from pipeline.spaces.base import SearchSpace
from pipeline.spaces.registry import (all_spaces, bench_of, canonical_name, create_space, list_spaces,
                                      register_space, space_choices, space_class, space_of)
from pipeline.spaces import graph, nb101, nb201, user  # noqa: F401  (registers them)
from pipeline.spaces.registry import space_for_data

__all__ = ["SearchSpace", "all_spaces", "bench_of", "canonical_name", "create_space", "list_spaces",
           "register_space", "space_choices", "space_class", "space_for_data", "space_of"]

"""Search spaces as plugins: one interface (:class:`SearchSpace`), one registry, one module
per space. Importing this package registers the built-in spaces."""
from pipeline.spaces.base import SearchSpace
from pipeline.spaces.registry import (all_spaces, bench_of, canonical_name, create_space, list_spaces,
                                      register_space, space_choices, space_class, space_of)
from pipeline.spaces import nb101, nb201, user  # noqa: F401  (registers them)
from pipeline.spaces.registry import space_for_data

__all__ = ["SearchSpace", "all_spaces", "bench_of", "canonical_name", "create_space", "list_spaces",
           "register_space", "space_choices", "space_class", "space_for_data", "space_of"]

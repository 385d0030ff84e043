"""The registry of search spaces: ``create_space(name)``, ``list_spaces()``, ``space_of(store)``.

A space module registers its class with :func:`register_space`; names, aliases (``101``,
``201``), the config key ``space`` values and the store id all resolve through here, so adding
a space is one module plus one import in ``pipeline/spaces/__init__.py``.
"""
from __future__ import annotations

from pipeline.errors import NarError

_CLASSES: dict[str, type] = {}   # registry name -> class
_NAMES: dict[str, str] = {}      # name, alias, config name or store id -> registry name
_INSTANCES: dict[str, object] = {}


def register_space(cls):
    """Class decorator: make ``cls`` (a :class:`SearchSpace`) available by its names."""
    _CLASSES[cls.name] = cls
    for n in (cls.name, *cls.aliases, *cls.config_names, cls.bench):
        if _NAMES.get(n, cls.name) != cls.name:
            raise ValueError(f"space name {n!r} is taken by {_NAMES[n]!r}")
        _NAMES[n] = cls.name
    return cls


def list_spaces() -> list[str]:
    """Registered space names (without aliases)."""
    return sorted(_CLASSES)


def space_choices() -> list[str]:
    """Every name ``--bench`` accepts: the registered names and their aliases."""
    return sorted({n for cls in _CLASSES.values() for n in (cls.name, *cls.aliases)})


def canonical_name(name) -> str:
    """The registry name of ``name`` (a name, alias, config ``space`` value or store id)."""
    key = str(name)
    if key not in _NAMES:
        raise NarError(f"unknown bench {name!r}: use a registered space, one of {', '.join(space_choices())}")
    return _NAMES[key]


def space_class(name) -> type:
    """The class of the space ``name``: its constants (class data) without an instance, for
    spaces that need a description to be instantiated."""
    return _CLASSES[canonical_name(name)]


def bench_of(name) -> str:
    """The store id of the space ``name`` (a name, alias, config ``space`` value or store id)."""
    return space_class(name).bench


def create_space(name, spec=None):
    """The space registered as ``name`` (or an alias); ``spec`` configures a space that needs
    one (the user's own cell space, see :mod:`pipeline.spaces.user`)."""
    cname = canonical_name(name)
    cls = _CLASSES[cname]
    if getattr(cls, "needs_spec", False):
        if spec is None:
            raise NarError(f"space {cname!r} needs a space description: pass --space-file SPACE.yaml")
        return cls(spec)
    if cname not in _INSTANCES:
        _INSTANCES[cname] = cls()
    return _INSTANCES[cname]


def spec_sidecar(data_path):
    """``FILE.space.yaml`` beside a NAR JSON ``FILE``: the description `nar-cli build` copies there."""
    from pathlib import Path
    p = Path(data_path)
    return p.with_name(p.name + ".space.yaml")


def space_for_data(bench, data_path=None, space_file=None):
    """The space ``bench`` for a NAR JSON at ``data_path``; a space that needs a description
    reads ``space_file``, else the one `nar-cli build` wrote beside the file."""
    if not getattr(space_class(bench), "needs_spec", False):
        if space_file is not None:
            raise NarError(f"--space-file is only for spaces described by a file (user), not {bench!r}")
        return create_space(bench)
    from pipeline.spaces.user import load_spec
    if space_file is None:
        side = spec_sidecar(data_path) if data_path is not None else None
        if side is None or not side.is_file():
            raise NarError(f"space {canonical_name(bench)!r} needs its description: pass --space-file "
                           f"SPACE.yaml (none found beside {data_path})")
        space_file = side
    return create_space(bench, load_spec(space_file))


def space_of(store):
    """The space of an open store (its ``bench`` attribute, and its spec for configured spaces)."""
    import json

    spec = store.attrs.get("space_spec")
    return create_space(store.bench, json.loads(spec) if spec else None)


def all_spaces() -> list:
    """One instance of every space that needs no description."""
    return [create_space(n) for n in list_spaces() if not getattr(_CLASSES[n], "needs_spec", False)]

"""Third-party extensions, found through entry points (the way fsspec finds implementations).

A package extends ocrclient by declaring entry points in one of four groups
(``[project.entry-points."<group>"]`` in its ``pyproject.toml``); the entry point's name is the
name users type:

=========================  ==================================  ===============================
group                      value                               used as
=========================  ==================================  ===============================
``ocrclient.transports``   ``"module:Class"``                  ``transport = "<name>"``
``ocrclient.dialects``     ``"module:Class"``                  ``dialect = "<name>"``
``ocrclient.backends``     ``"package:file.toml"``             ``--backend <name>``
``ocrclient.exporters``    ``"module:function"``               ``--format <name>`` (``.<name>``)
=========================  ==================================  ===============================

Rules: entry points are read once per process, every group in one scan, and cached (:func:`refresh`
reads them again);
nothing is imported until a backend or a format that names it is used (a backend profile's file
is located without importing its package); a plugin may not reuse a built-in name, and two
plugins may not share one: either is a :class:`~ocrclient.errors.ConfigError` naming the
distribution (``ocr`` exits 2), never a silent replacement.  The worked example is
``examples/plugin/`` (docs/plugins.md).

Example::

    >>> table("dialect", {"plain": "ocrclient.dialects.plain:PlainDialect"}, lambda p: p.value)["plain"]
    'ocrclient.dialects.plain:PlainDialect'
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError

__all__ = ["GROUPS", "Plugin", "discovered", "lazy_table", "profile_path", "refresh", "table"]

#: what a plugin provides -> its entry-point group
GROUPS: dict[str, str] = {
    "transport": "ocrclient.transports",
    "dialect": "ocrclient.dialects",
    "backend": "ocrclient.backends",
    "output format": "ocrclient.exporters",
}

V = TypeVar("V")


@dataclass(frozen=True)
class Plugin:
    """One entry point: its name, its value and the distribution that declares it."""

    name: str
    value: str
    dist: str


@functools.cache
def _scan() -> dict[str, tuple[Plugin, ...]]:
    """Every group's entry points from one scan of the installed distributions (each scan reads
    every distribution's ``entry_points.txt``: one per group cost four)."""
    found = entry_points()
    out: dict[str, tuple[Plugin, ...]] = {}
    for kind, group in GROUPS.items():
        plugins = [
            Plugin(ep.name, ep.value, ep.dist.name if ep.dist is not None else "?") for ep in found.select(group=group)
        ]
        out[kind] = tuple(sorted(plugins, key=lambda p: (p.name, p.dist)))
    return out


def discovered(kind: str) -> tuple[Plugin, ...]:
    """The entry points of ``kind``'s group (all groups read in one scan, once per process),
    sorted by name."""
    return _scan()[kind]


def refresh() -> None:
    """Forget the entry points read so far (after installing a plugin in a running process)."""
    _scan.cache_clear()


def table(kind: str, builtin: Mapping[str, V], make: Callable[[Plugin], V]) -> dict[str, V]:
    """``builtin`` plus the plugins of ``kind`` (each value made by ``make``).

    Raises :class:`ConfigError` when a plugin's name is a built-in one or two plugins share one.
    """
    out = dict(builtin)
    owner: dict[str, str] = {}
    for plugin in discovered(kind):
        where = f"(entry point {plugin.name} = {plugin.value!r} in group {GROUPS[kind]})"
        if plugin.name in builtin:
            raise ConfigError(
                f"plugin {plugin.dist!r} registers the {kind} {plugin.name!r}, which is built in; "
                f"a plugin cannot replace it {where}"
            )
        if plugin.name in owner:
            raise ConfigError(
                f"plugins {owner[plugin.name]!r} and {plugin.dist!r} both register the {kind} "
                f"{plugin.name!r}; uninstall one {where}"
            )
        owner[plugin.name] = plugin.dist
        out[plugin.name] = make(plugin)
    return out


class _LazyTable(Mapping[str, V]):
    """:func:`table` as a read-only mapping, merged when read (so importing the module that holds
    it reads no entry points, and a clash surfaces where the name is used)."""

    def __init__(self, kind: str, builtin: Mapping[str, V], make: Callable[[Plugin], V]) -> None:
        self._args = (kind, builtin, make)

    def _merged(self) -> dict[str, V]:
        return table(*self._args)

    def __getitem__(self, name: str) -> V:
        return self._merged()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


def lazy_table(kind: str, builtin: Mapping[str, V], make: Callable[[Plugin], V]) -> Mapping[str, V]:
    """``builtin`` plus the plugins of ``kind``, read on each use (entry points are cached)."""
    return _LazyTable(kind, builtin, make)


#: plugin backends whose entry point names no profile file -> why (said when that one is used)
BROKEN_PROFILES: dict[str, str] = {}


def listed_profile(plugin: Plugin) -> Path:
    """:func:`profile_path`, or for an entry point that names no file a path that is not there,
    its error kept in :data:`BROKEN_PROFILES` for when that backend is used: one plugin's mistake
    fails its own backend, not every one (``--backend local`` was refused for it)."""
    try:
        return profile_path(plugin)
    except ConfigError as exc:
        BROKEN_PROFILES[plugin.name] = exc.message
        return Path(f"<{plugin.name}: no profile file>")


def profile_path(plugin: Plugin) -> Path:
    """The TOML file a ``ocrclient.backends`` entry point names (``"package:file.toml"``),
    found without importing the package."""
    package, sep, filename = plugin.value.partition(":")
    package, filename = package.strip(), filename.strip()
    bad = f"plugin {plugin.dist!r}: backend {plugin.name!r} = {plugin.value!r}"
    if not sep or not package or not filename.endswith(".toml"):
        raise ConfigError(f"{bad} is not 'package:file.toml'")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{bad}: cannot find {package} ({exc})") from exc
    if spec is None:
        raise ConfigError(f"{bad}: package {package} is not installed")
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        folder = Path(spec.origin).parent
    else:
        raise ConfigError(f"{bad}: {package} has no folder to hold {filename}")
    return folder / filename

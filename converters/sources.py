"""Where build tooling downloads from: the package index pip is configured to use, and the Debian mirror
the host's apt sources use. No host is written here; both come from the machine's own configuration.

- :func:`debian_mirror`: ``$EDGEKIT_DEBIAN_MIRROR``, else the mirror of the host's apt sources
  (one-line ``*.list`` files and deb822 ``*.sources`` files), for debootstrap.
- :func:`download_sdist`: a project's source archive from pip's configured indexes, checked against
  the sha256 the index lists for it (implemented in :mod:`edge.native.sdist`, which the native
  runtime's build uses too; re-exported here).
"""

from __future__ import annotations

from edge.native.apt import (  # the Debian-mirror half lives beside the native build that uses it too
    APT_ROOT,
    DEBIAN_SUITES,
    DEBOOTSTRAP_SCHEMES,
    MIRROR_VARIABLE,
    AptSource,
    apt_sources,
    debian_mirror,
    parse_deb822_sources,
    parse_one_line_sources,
    pick_debian_mirror,
)
from edge.native.sdist import (  # the package-index half lives beside the native build that uses it
    IndexFile,
    SourceError,
    download,
    download_sdist,
    find_sdist,
    normalize_project,
    parse_simple_page,
    pip_config,
    pip_default_index,
    pip_index_urls,
)

__all__ = [
    "APT_ROOT",
    "DEBIAN_SUITES",
    "DEBOOTSTRAP_SCHEMES",
    "MIRROR_VARIABLE",
    "AptSource",
    "IndexFile",
    "SourceError",
    "apt_sources",
    "debian_mirror",
    "download",
    "download_sdist",
    "find_sdist",
    "normalize_project",
    "parse_deb822_sources",
    "parse_one_line_sources",
    "parse_simple_page",
    "pick_debian_mirror",
    "pip_config",
    "pip_default_index",
    "pip_index_urls",
]

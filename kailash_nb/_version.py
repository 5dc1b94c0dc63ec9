"""The package's version, ``__version__``.

The number itself is written once, in ``labextension/package.json`` (pyproject.toml says
why). In a source checkout, including an editable install, it is read from that file, so
it is right even before the checkout is installed and after it changes; an installed wheel
has no such file and reports its installed metadata, which the build took from that file.
"""

from __future__ import annotations

import json
import os.path
import re

DISTRIBUTION = "kailash-nb"
# os.path rather than pathlib: pathlib would add milliseconds to `import kailash_nb`.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE_JSON = os.path.join(_CHECKOUT, "labextension", "package.json")

# The npm versions this project uses: MAJOR.MINOR.PATCH with an optional prerelease tag
# (1.2.0-alpha.1, 1.2.0-rc.2). hatch-nodejs-version maps them to PEP 440 the same way.
_NPM_VERSION = re.compile(
    r"(?P<release>\d+\.\d+\.\d+)(?:-(?P<tag>alpha|beta|rc|a|b)\.?(?P<number>\d+))?"
)
_PEP440_TAG = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "rc": "rc"}


def python_version(npm_version: str) -> str:
    """The PEP 440 form of an npm version: ``0.1.0`` stays, ``0.2.0-rc.1`` is ``0.2.0rc1``.

    Raises ``ValueError`` naming the version when it is not MAJOR.MINOR.PATCH with an
    optional alpha, beta or rc tag.
    """
    match = _NPM_VERSION.fullmatch(npm_version)
    if match is None:
        raise ValueError(
            f"version {npm_version!r} in {_PACKAGE_JSON} is not MAJOR.MINOR.PATCH with an "
            "optional -alpha.N, -beta.N or -rc.N"
        )
    if match["tag"] is None:
        return match["release"]
    return f"{match['release']}{_PEP440_TAG[match['tag']]}{match['number']}"


def _read_version() -> str:
    if os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")) and os.path.isfile(_PACKAGE_JSON):
        with open(_PACKAGE_JSON, encoding="utf-8") as package_json:
            return python_version(json.load(package_json)["version"])
    from importlib import metadata  # only here: it costs milliseconds to import

    return metadata.version(DISTRIBUTION)


__version__ = _read_version()

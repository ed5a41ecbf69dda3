"""relbench's one version rule: release versions are semantic, schema numbers are integers.

A *release version* says which content produced a number: the relbench package, a suite, a
perturbation, a scorer (the classical detector's config or a third-party scorer), an installed
package that provides a model, perturbation or scorer. Each is a semantic version
MAJOR.MINOR.PATCH (https://semver.org, optional `-pre` and `+build` parts). A perturbed suite's
version is its base suite's with build metadata naming each perturbation and its version,
`1.0.0+typos-1.0.0` (chained: `1.0.0+template-2-1.0.0.typos-1.0.0`).

A *schema number* says how a file is laid out (`schema_version` of run.json and
leaderboard.json, `records_version`, a circuit card's `schema_version`, the checkpoint config's
`version`): a plain positive integer, a string where the file has always held a string, bumped
only when a reader must change.

relbench's own versions must already be semantic (`check_release`). A version read from an
installed package is normalised (`extension_release`): "7" and "1.0" are read as 7.0.0 and
1.0.0, and Python packaging's forms map onto semver ("1.2rc1" → 1.2.0-rc1, "1.2.post1" →
1.2.0+post1); anything else is an error naming the package.
"""

from __future__ import annotations

import re

_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
"""A semantic version 2.0.0 (the regular expression semver.org publishes)."""

SCHEMA_NUMBER = re.compile(r"^[1-9]\d*$")
"""A schema or format number: a positive integer without leading zeros."""

_SHORT = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$")


def is_release(version: object) -> bool:
    """Whether `version` is a semantic version string."""
    return isinstance(version, str) and SEMVER.match(version) is not None


def check_release(version: object, what: str) -> str:
    """`version` if it is a semantic version MAJOR.MINOR.PATCH, else a ValueError naming `what`
    (e.g. "perturbation 'typos'")."""
    if not is_release(version):
        raise ValueError(f"{what}: version {version!r} is not a semantic version "
                         "MAJOR.MINOR.PATCH (e.g. '1.0.0')")
    return str(version)


def check_schema_number(number: object, what: str) -> str | int:
    """`number` if it is a plain positive integer (or such a string), else a ValueError naming
    `what`."""
    if isinstance(number, bool) or not (
            (isinstance(number, int) and number > 0)
            or (isinstance(number, str) and SCHEMA_NUMBER.match(number))):
        raise ValueError(f"{what}: schema number {number!r} is not a positive integer")
    return number


def normalise_release(version: str) -> str | None:
    """`version` as a semantic version, or None when it has no faithful one: semver stays as it
    is, "N" and "N.M" gain zero parts, and a Python packaging (PEP 440) version maps its
    pre-release and dev parts to `-rcN`/`-devN` and its post and local parts to build metadata."""
    version = version.strip()
    if SEMVER.match(version):
        return version
    short = _SHORT.match(version)
    if short:
        return f"{short.group(1)}.{short.group(2) or 0}.0"
    from packaging.version import InvalidVersion, Version

    try:
        v = Version(version)
    except InvalidVersion:
        return None
    if v.epoch or len(v.release) > 3:
        return None
    out = ".".join(str(n) for n in (*v.release, 0, 0)[:3])
    pre = [f"{v.pre[0]}{v.pre[1]}"] if v.pre else []
    pre += [f"dev{v.dev}"] if v.dev is not None else []
    build = [f"post{v.post}"] if v.post is not None else []
    build += [v.local] if v.local else []
    out += ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")
    return out if SEMVER.match(out) else None


def extension_release(version: object, what: str, package: str | None) -> str:
    """The semantic version of something an installed package provides (see
    `normalise_release`); a ValueError naming `what` and the package when there is none."""
    norm = normalise_release(version) if isinstance(version, str) else None
    if norm is None:
        raise ValueError(f"{what} from package {package or '?'}: version {version!r} is not a "
                         "semantic version MAJOR.MINOR.PATCH (e.g. '1.0.0'); the package must "
                         "declare one")
    return norm


def perturbed_release(suite_version: str, perturbation: str, version: str) -> str:
    """The version of a suite after perturbation `perturbation` at `version`: build metadata
    `<perturbation>-<version>` appended to the suite's (`1.0.0+typos-1.0.0`); characters semver
    does not allow in build metadata become "-"."""
    part = re.sub(r"[^0-9A-Za-z.-]", "-", f"{perturbation}-{version}").strip(".")
    part = re.sub(r"\.{2,}", ".", part)
    return f"{suite_version}{'.' if '+' in suite_version else '+'}{part}"


__all__ = [
    "SCHEMA_NUMBER",
    "SEMVER",
    "check_release",
    "check_schema_number",
    "extension_release",
    "is_release",
    "normalise_release",
    "perturbed_release",
]

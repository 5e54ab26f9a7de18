"""The package metadata: pyproject.toml is read by setuptools without deprecation warnings (every install printed
one for ``project.license`` as a table) and names the licence as an SPDX expression with its file."""

from __future__ import annotations

import warnings

from fornet.paths import CHECKOUT_ROOT


def test_pyproject_reads_without_deprecation_warnings() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    distribution = Distribution()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_configuration(distribution, CHECKOUT_ROOT / "pyproject.toml")
    metadata = distribution.metadata
    assert metadata.license_expression == "MIT" and metadata.license_files == ["LICENSE"]
    assert "MIT License" in (CHECKOUT_ROOT / "LICENSE").read_text(encoding="utf-8")

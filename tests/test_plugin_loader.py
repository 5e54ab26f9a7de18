"""fornet.runtime.tensorrt.plugins: finding and loading libfornet_plugins.so (fake TensorRT registry)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fornet.runtime.tensorrt import plugins
from fornet.runtime.tensorrt.env import TensorRTUnavailableError
from fornet.runtime.tensorrt.plugins import (
    PLUGIN_ENV_VAR,
    PLUGIN_LIBRARY_NAME,
    PluginLibraryError,
    find_plugin_library,
    load_plugin_library,
    plugin_search_paths,
)
from tests.helpers.fake_tensorrt import FakeRegistry, TrtWorld, install_fake_tensorrt


def install_registry(monkeypatch: pytest.MonkeyPatch, registry: FakeRegistry) -> None:
    install_fake_tensorrt(monkeypatch, TrtWorld(registry=registry))


@pytest.fixture
def shared_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (empty) shared library for ctypes to load."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C compiler to build a test shared library")
    directory = tmp_path_factory.mktemp("lib")
    source = directory / "empty.c"
    source.write_text("int fornet_test_symbol(void) { return 1; }\n")
    library = directory / PLUGIN_LIBRARY_NAME
    subprocess.run([compiler, "-shared", "-fPIC", "-x", "c", str(source), "-o", str(library)], check=True)
    return library


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLUGIN_ENV_VAR, raising=False)


def test_default_search_order() -> None:
    paths = plugin_search_paths()
    assert paths[0] == plugins.default_plugin_build_dir() / PLUGIN_LIBRARY_NAME
    assert Path("/usr/local/lib") / PLUGIN_LIBRARY_NAME in paths
    assert all(p.name == PLUGIN_LIBRARY_NAME for p in paths)


def test_explicit_path_and_env_var_are_the_only_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugin_search_paths(tmp_path) == [tmp_path / PLUGIN_LIBRARY_NAME]  # a directory
    assert plugin_search_paths(tmp_path / "x.so") == [tmp_path / "x.so"]
    monkeypatch.setenv(PLUGIN_ENV_VAR, str(tmp_path / "env.so"))
    assert plugin_search_paths() == [tmp_path / "env.so"]
    assert plugin_search_paths(tmp_path / "x.so") == [tmp_path / "x.so"]  # explicit beats the variable


def test_missing_library_names_every_searched_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(plugins, "default_plugin_build_dir", lambda: tmp_path / "nowhere")
    monkeypatch.setattr(plugins.Path, "is_file", lambda self: False)
    with pytest.raises(PluginLibraryError) as info:
        find_plugin_library()
    message = str(info.value)
    for candidate in plugin_search_paths():
        assert str(candidate) in message
    assert "fornet-build-plugin" in message and PLUGIN_ENV_VAR in message


def test_missing_env_var_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PLUGIN_ENV_VAR, str(tmp_path / "gone.so"))
    with pytest.raises(PluginLibraryError, match=rf"searched \${PLUGIN_ENV_VAR}:\n  .*gone.so"):
        find_plugin_library()


def test_load_needs_tensorrt(monkeypatch: pytest.MonkeyPatch, shared_library: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match=r"pip install tensorrt"):
        load_plugin_library(shared_library)


def test_load_checks_the_registry(monkeypatch: pytest.MonkeyPatch, shared_library: Path) -> None:
    registry = FakeRegistry(registered=True)
    install_registry(monkeypatch, registry)
    assert load_plugin_library(shared_library.parent) == shared_library.resolve()
    assert registry.queries[-1] == ("TopKGate", "1", "fornet") and registry.loaded == []


def test_dynamic_only_library_goes_through_load_library(monkeypatch: pytest.MonkeyPatch,
                                                        shared_library: Path) -> None:
    registry = FakeRegistry(registered=False, registers_on_load_library=True)
    install_registry(monkeypatch, registry)
    monkeypatch.setenv(PLUGIN_ENV_VAR, str(shared_library))
    assert load_plugin_library() == shared_library.resolve()
    assert registry.loaded == [str(shared_library.resolve())]


def test_library_without_the_creator_is_a_hard_error(monkeypatch: pytest.MonkeyPatch,
                                                     shared_library: Path) -> None:
    install_registry(monkeypatch, FakeRegistry(registered=False))
    with pytest.raises(PluginLibraryError, match=r"no plugin creator TopKGate/1/fornet.*fornet-build-plugin"):
        load_plugin_library(shared_library)


def test_unloadable_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_registry(monkeypatch, FakeRegistry(registered=True))
    bogus = tmp_path / PLUGIN_LIBRARY_NAME
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(PluginLibraryError, match=r"cannot load .*built on this machine"):
        load_plugin_library(bogus)


def test_build_plugin_writes_under_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fornet-build-plugin's default output follows the working directory, not the source checkout."""
    from fornet.cli import build_plugin

    built: list[Path] = []

    def fake_build(build, verbose=False):
        built.append(build.out_dir)
        return build.out_dir / PLUGIN_LIBRARY_NAME

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fornet.cli.build_plugin.build_plugin_library", fake_build)
    monkeypatch.setattr("fornet.cli.build_plugin.find_nvcc", lambda: None)
    assert build_plugin.main(["--cuda-arch", "87"]) == 0
    assert built == [tmp_path / "build" / "plugins"]
    assert plugin_search_paths()[0] == tmp_path / "build" / "plugins" / PLUGIN_LIBRARY_NAME

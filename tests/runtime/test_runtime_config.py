"""Configuration: argument > environment > default, with the origin of every value."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import DEFAULT_OMNIHUB_URL
from omnihub.config import DEFAULT_HF_ENDPOINT, describe, resolve, resolve_home
from omnihub.errors import ConfigurationError

_VARS = (
    "OMNIHUB_HOME",
    "OMNIHUB_URL",
    "OMNIHUB_OFFLINE",
    "OMNIHUB_DISABLE_PROGRESS",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OMNIHUB_RETRIES",
    "OMNIHUB_BACKOFF",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    cfg = resolve()
    assert cfg.home == Path.home() / ".omnihub"
    assert cfg.urls == (DEFAULT_OMNIHUB_URL,)
    assert cfg.offline is False
    assert cfg.hf_endpoint == DEFAULT_HF_ENDPOINT
    assert cfg.sources["home"] == "default"
    assert cfg.sources["urls"] == "default"


def test_environment_beats_default_and_argument_beats_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "env"))
    monkeypatch.setenv("OMNIHUB_URL", "https://a.example/zoo, https://b.example/zoo")
    monkeypatch.setenv("OMNIHUB_OFFLINE", "yes")
    cfg = resolve()
    assert cfg.home == tmp_path / "env"
    assert cfg.offline is True
    assert cfg.urls == ("https://a.example/zoo", "https://b.example/zoo")
    assert cfg.sources["home"] == "environment (OMNIHUB_HOME)"
    cfg = resolve(home=tmp_path / "arg", urls="https://c.example", offline=False)
    assert cfg.home == tmp_path / "arg"
    assert cfg.urls == ("https://c.example",)
    assert cfg.offline is False
    assert cfg.sources["offline"] == "argument"


@pytest.mark.parametrize("field", ["splice", "direct_io"])
def test_the_removed_transfer_switches_are_not_settings(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    monkeypatch.setenv(f"OMNIHUB_{field.upper()}", "0")  # a stale environment is ignored
    assert field not in {s.name for s in describe()}
    assert not hasattr(resolve(), field)
    with pytest.raises(ConfigurationError, match=field):
        resolve(**{field: False})


def test_a_config_is_a_frozen_value_whose_sources_do_not_count(tmp_path: Path) -> None:
    from_argument = resolve(home=tmp_path)
    from_text = resolve(home=str(tmp_path))
    assert from_argument == from_text
    assert from_argument == attrs.evolve(from_argument, sources={})
    assert hash(from_argument) == hash(attrs.evolve(from_argument, sources={}))
    assert from_argument != attrs.evolve(from_argument, retries=0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        from_argument.retries = 1  # type: ignore[misc]


@given(retries=st.integers(0, 10**6), backoff=st.floats(0, 1e6, allow_nan=False))
def test_numbers_from_the_environment_round_trip(retries: int, backoff: float) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMNIHUB_RETRIES", f" {retries} ")
        env.setenv("OMNIHUB_BACKOFF", repr(backoff))
        cfg = resolve()
    assert (cfg.retries, cfg.backoff) == (retries, backoff)
    assert cfg.sources["retries"] == "environment (OMNIHUB_RETRIES)"


def test_home_expands_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_HOME", "~/models")
    assert resolve().home == Path.home() / "models"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("OMNIHUB_OFFLINE", "maybe", "OMNIHUB_OFFLINE='maybe'"),
        ("OMNIHUB_RETRIES", "-1", "OMNIHUB_RETRIES='-1'"),
        ("OMNIHUB_RETRIES", "many", "non-negative int"),
        ("OMNIHUB_URL", " , ", "at least one base URL"),
        ("OMNIHUB_ALLOW_HTTP", "sometimes", "OMNIHUB_ALLOW_HTTP='sometimes'"),
        ("OMNIHUB_CONNECTIONS", "0", "at least 1 connection"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=message):
        resolve()


def test_unknown_argument_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="nonsense"):
        resolve(nonsense=1)


def test_describe_shows_sources_and_hides_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_supersecret")
    rows = {s.name: s for s in describe()}
    assert rows["hf_token"].value == "set (hidden)"
    assert rows["hf_token"].source == "environment (HUGGING_FACE_HUB_TOKEN)"
    assert rows["urls"].source == "default"
    assert "hf_supersecret" not in repr(describe()) + repr(resolve())


def test_mirror_passwords_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_URL", "https://user:s3cret@mirror.example.org/zoo")
    rows = {s.name: s for s in describe()}
    assert rows["urls"].value == "https://mirror.example.org/zoo"
    assert "s3cret" not in repr(resolve())
    assert resolve().urls == ("https://user:s3cret@mirror.example.org/zoo",)  # still usable


_HOMES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=30)


@given(given_home=st.none() | _HOMES, user_home=st.sampled_from(["/home/a", "/root", "/x y"]))
def test_resolve_home_agrees_with_resolve_whatever_the_environment(
    given_home: str | None, user_home: str
) -> None:
    """The cache hit's shortcut (remembered per value) agrees with the full resolution, and
    follows every change of OMNIHUB_HOME and HOME."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", user_home)
        if given_home is None:
            env.delenv("OMNIHUB_HOME", raising=False)
        else:
            env.setenv("OMNIHUB_HOME", given_home)
        assert resolve_home() == resolve().home


def test_a_home_of_an_unknown_user_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``~nosuchuser`` cannot be expanded: a ConfigurationError naming OMNIHUB_HOME, on the
    full resolution and on the cache hit's shortcut alike (found by the settings fuzz test)."""
    monkeypatch.setenv("OMNIHUB_HOME", "~omnihub-no-such-user/cache")
    with pytest.raises(ConfigurationError, match="OMNIHUB_HOME"):
        resolve()
    with pytest.raises(ConfigurationError, match="OMNIHUB_HOME"):
        resolve_home()

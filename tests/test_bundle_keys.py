"""Key generation, the signing-key search order, and refusal of readable private keys."""

from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebuild.bundle import BundleError, keygen, resolve_signing_key
from edgebuild.bundle.keys import key_id, load_public_key


def raw_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("EDGEBUILD_SIGNING_KEY", raising=False)


def test_keygen_writes_private_0600_and_matching_public(tmp_path):
    private, public = keygen(tmp_path / "k")
    assert (private.name, public.name) == ("edgebuild.key", "edgebuild.pub.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key, _ = resolve_signing_key(tmp_path, str(private))
    assert raw_public(key) == load_public_key(public).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    with pytest.raises(BundleError, match="already exists"):
        keygen(tmp_path / "k")


def test_configured_key_wins_over_environment(tmp_path, monkeypatch):
    configured, _ = keygen(tmp_path / "configured")
    env_private, _ = keygen(tmp_path / "env")
    monkeypatch.setenv("EDGEBUILD_SIGNING_KEY", str(env_private))
    key, source = resolve_signing_key(tmp_path, "configured/edgebuild.key")  # relative to the project
    assert "[bundle].signing_key" in source
    assert key_id(key.public_key()) != key_id(resolve_signing_key(tmp_path, None)[0].public_key())


def test_environment_key_as_pem_text_or_path(tmp_path, monkeypatch):
    private, _ = keygen(tmp_path / "env")
    monkeypatch.setenv("EDGEBUILD_SIGNING_KEY", private.read_text())
    key, source = resolve_signing_key(tmp_path, None)
    assert "EDGEBUILD_SIGNING_KEY" in source
    monkeypatch.setenv("EDGEBUILD_SIGNING_KEY", str(private))
    assert raw_public(resolve_signing_key(tmp_path, None)[0]) == raw_public(key)
    monkeypatch.setenv("EDGEBUILD_SIGNING_KEY", str(tmp_path / "nope.key"))
    with pytest.raises(
        BundleError, match="EDGEBUILD_SIGNING_KEY is neither a PEM key nor an existing key file"
    ):
        resolve_signing_key(tmp_path, None)


@pytest.mark.parametrize("cut", ["body", "body-long-line", "pem-without-begin"])
def test_key_material_in_the_variable_is_never_echoed(tmp_path, monkeypatch, cut):
    """EDGEBUILD_SIGNING_KEY holding a PEM key's base64 body (no BEGIN line) once came back in the
    error message; no form of it may appear now."""
    private, _ = keygen(tmp_path / "env")
    pem = private.read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    value = {"body": body, "body-long-line": body * 8, "pem-without-begin": pem.split("\n", 1)[1]}[cut]
    monkeypatch.setenv("EDGEBUILD_SIGNING_KEY", value)
    with pytest.raises(BundleError) as caught:
        resolve_signing_key(tmp_path, None)
    message = str(caught.value)
    assert message.startswith("EDGEBUILD_SIGNING_KEY is neither a PEM key nor an existing key file")
    assert not any(body[i : i + 8] in message for i in range(0, len(body) - 8))


def test_development_key_is_created_once_and_reused(tmp_path):
    key, source = resolve_signing_key(tmp_path, None)
    assert "development key" in source and ".edgebuild/keys/edgebuild.key" in source
    assert stat.S_IMODE((tmp_path / ".edgebuild/keys/edgebuild.key").stat().st_mode) == 0o600
    assert raw_public(resolve_signing_key(tmp_path, None)[0]) == raw_public(key)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_readable_by_others_is_refused(tmp_path, mode):
    private, _ = keygen(tmp_path / "k")
    private.chmod(mode)
    with pytest.raises(BundleError) as caught:
        resolve_signing_key(tmp_path, str(private))
    assert str(private) in str(caught.value) and "chmod 600" in str(caught.value)


def test_missing_configured_key_names_file_and_setting(tmp_path):
    with pytest.raises(BundleError, match=r"keys/release.key.*\[bundle\].signing_key"):
        resolve_signing_key(tmp_path, "keys/release.key")


def test_wrong_key_kinds_are_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    other.chmod(0o600)
    with pytest.raises(BundleError, match="not an Ed25519 key"):
        resolve_signing_key(tmp_path, str(other))
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    locked.chmod(0o600)
    with pytest.raises(BundleError, match="password-protected"):
        resolve_signing_key(tmp_path, str(locked))

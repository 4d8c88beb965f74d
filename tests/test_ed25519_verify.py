"""The pure-Python Ed25519 verifier every bundle loader carries (edgebuild/bundle/ed25519_verify.py):
RFC 8032's own test vectors, agreement with `cryptography` on random keys and messages, and the
strict rules (non-canonical S, undecodable or small-order keys, non-canonical R)."""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgebuild.bundle import ed25519_verify as ed
from edgebuild.bundle.ed25519_verify import (
    ed25519_public_key_from_pem,
    ed25519_public_key_problem,
    ed25519_verify,
)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493

# RFC 8032 section 7.1 (Ed25519): secret key, public key, message, signature, as the RFC prints them
_TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0"
)
RFC8032_VECTORS = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
        "387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
        "4a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b"
        "5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
        "454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e030"
        "3dca179c138ac17ad9bef1177331a704",
    ),
]

# The eight points of small order (the cofactor-8 torsion subgroup) in canonical encoding: identity,
# the point of order 2, two of order 4, four of order 8 (from "Taming the many EdDSAs", CCTV vectors)
SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]


def _cryptography_accepts(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    "name,secret,public,message,signature", RFC8032_VECTORS, ids=[v[0] for v in RFC8032_VECTORS]
)
def test_rfc8032_vectors(name, secret, public, message, signature):
    public, message, signature = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    # the transcription is checked by cryptography: the secret key gives this key and signature
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert private.public_key().public_bytes_raw() == public
    assert private.sign(message) == signature
    assert ed25519_verify(public, signature, message)
    assert not ed25519_verify(public, signature, message + b"\0")
    assert not ed25519_verify(public, signature[:-1] + bytes([signature[-1] ^ 0x01]), message)


def test_random_keys_and_messages_agree_with_cryptography():
    rng = random.Random(8032)
    for round_ in range(24):
        private = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        public = private.public_key().public_bytes_raw()
        message = rng.randbytes(rng.choice([0, 1, 63, 64, 1000, 5000]))
        signature = private.sign(message)
        assert ed25519_verify(public, signature, message), round_
        # one bit flipped anywhere in the signature: both reject
        bit = rng.randrange(512)
        mutated = bytearray(signature)
        mutated[bit // 8] ^= 1 << (bit % 8)
        assert not ed25519_verify(public, bytes(mutated), message), (round_, bit)
        assert not _cryptography_accepts(public, bytes(mutated), message), (round_, bit)
        # another key's signature, or another message: both reject
        other = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)).sign(message)
        assert not ed25519_verify(public, other, message) and not _cryptography_accepts(
            public, other, message
        )
        assert not ed25519_verify(public, signature, message + b"x")


def test_non_canonical_s_is_rejected_like_cryptography():
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public, message = private.public_key().public_bytes_raw(), b"manifest"
    signature = private.sign(message)
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + L).to_bytes(32, "little")  # the same point equation, S >= L
    assert not ed25519_verify(public, malleated, message)
    assert not _cryptography_accepts(public, malleated, message)


@pytest.mark.parametrize("key_hex", SMALL_ORDER_KEYS)
def test_small_order_keys_are_rejected(key_hex):
    """Under a small-order key, R = identity and S = 0 satisfies [S]B = R + [k]A for every message
    whose k kills A. OpenSSL (so `cryptography`) accepts such keys; this verifier and the loader do not."""
    key = bytes.fromhex(key_hex)
    identity = SMALL_ORDER_KEYS[0]
    forged = bytes.fromhex(identity) + bytes(32)
    assert ed.ed25519_verify(key, forged, b"any manifest") is False
    pem = Ed25519PublicKey.from_public_bytes(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "small order" in ed25519_public_key_problem(pem)


def test_forgery_under_the_identity_key_is_rejected():
    # cryptography 48 (OpenSSL 3) accepts this signature for any message (checked by hand, 2026-11)
    identity = bytes.fromhex(SMALL_ORDER_KEYS[0])
    forged = identity + bytes(32)
    assert not ed25519_verify(identity, forged, b"a manifest nobody signed")


def test_non_canonical_and_invalid_point_encodings_are_rejected():
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    public, message = private.public_key().public_bytes_raw(), b"manifest"
    signature = private.sign(message)
    # a public key whose y is >= p: never a valid encoding
    for y in (P, P + 1, 2**255 - 1):
        assert not ed25519_verify(y.to_bytes(32, "little"), signature, message)
    # a y for which no x exists: not a curve point
    off_curve = next(y for y in range(2, 100) if ed._ed25519_decode(y.to_bytes(32, "little")) is None)
    assert not ed25519_verify(off_curve.to_bytes(32, "little"), signature, message)
    assert "not a valid Ed25519 point" in ed25519_public_key_problem(
        _pem_of_raw(off_curve.to_bytes(32, "little"))
    )
    # x = 0 with the sign bit set ("negative zero")
    assert ed._ed25519_decode((1 | 1 << 255).to_bytes(32, "little")) is None
    # an R with y >= p (e.g. p + 1, the identity's non-canonical twin) never equals the canonical
    # encoding the verifier computes
    for y in (P, P + 1, P + 18):
        assert not ed25519_verify(public, y.to_bytes(32, "little") + signature[32:], message)
    # wrong lengths
    assert not ed25519_verify(public[:31], signature, message)
    assert not ed25519_verify(public, signature[:63], message)


def _pem_of_raw(raw: bytes) -> bytes:
    import base64

    der = bytes.fromhex("302a300506032b6570032100") + raw
    return b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n"


def test_pem_parsing():
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"pem").digest())
    raw = private.public_key().public_bytes_raw()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ed25519_public_key_from_pem(pem) == raw
    assert ed25519_public_key_from_pem(pem.decode()) == raw
    assert ed25519_public_key_problem(pem) is None
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        ed25519_public_key_from_pem(ec_pem)
    with pytest.raises(ValueError, match="no '-----BEGIN PUBLIC KEY-----' block"):
        ed25519_public_key_from_pem(b"hello")
    with pytest.raises(ValueError, match="not valid base64"):
        ed25519_public_key_from_pem(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")


def _python37() -> str | None:
    from device_pythons import interpreter

    return interpreter("3.7")


def test_runs_on_python_37_with_the_standard_library_only():
    python = _python37()
    if python is None:
        pytest.skip("no Python 3.7 interpreter (pyenv) on this machine")
    vector = RFC8032_VECTORS[2]
    module = Path(ed.__file__)
    code = (
        "import runpy, sys; ns = runpy.run_path(sys.argv[1]); v = ns['ed25519_verify'];"
        "pk, msg, sig = (bytes.fromhex(a) for a in sys.argv[2:5]);"
        "print(v(pk, sig, msg), v(pk, sig, msg + b'x'))"
    )
    done = subprocess.run(
        [python, "-I", "-S", "-c", code, str(module), vector[2], vector[3], vector[4]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_small_order_key_is_refused_by_edgebuild_verify_too(tmp_path):
    from edgebuild.bundle import BundleError
    from edgebuild.bundle.keys import load_public_key

    key = tmp_path / "small.pub.pem"
    key.write_bytes(_pem_of_raw(bytes.fromhex(SMALL_ORDER_KEYS[0])))
    with pytest.raises(BundleError, match="small order"):
        load_public_key(key)

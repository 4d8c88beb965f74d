# Ed25519 signature verification in pure Python, written from RFC 8032 (section 5.1).
#
# The loader falls back to this when neither the `cryptography` package nor an OpenSSL 3 `openssl`
# command is on the device (Coral's Mendel Linux and JetPack 5 ship OpenSSL 1.1.1, whose command
# line cannot verify a raw Ed25519 message). Like portable.py, the source text is pasted verbatim
# into every generated loader.py, so it must run on Python 3.7 with the standard library only, and
# its names carry an ed25519 prefix so they cannot clash with the loader's own.
#
# Verification is strict, matching OpenSSL (and so `cryptography`), plus a small-order key check:
# - S must be canonical (S < L), else the signature is rejected (RFC 8032 5.1.7 step 1);
# - the public key must decode (y < p, a square root exists, no "negative zero" x) and must not
#   be a point of small order (such a key "verifies" forged signatures on any message);
# - R is compared as bytes with the canonical encoding of [S]B - [k]A, so a non-canonical or
#   undecodable R never matches (the cofactorless equation, as OpenSSL checks it).
# Like OpenSSL, a key of mixed order (a large-order point plus a small-order component) is accepted:
# telling it apart costs a full scalar multiplication, and only a key's owner can make one.
# Verification uses only public data, so variable-time arithmetic is fine here.
import base64
import binascii
import hashlib

_ED25519_P = 2**255 - 19
_ED25519_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point
_ED25519_D = -121665 * pow(121666, _ED25519_P - 2, _ED25519_P) % _ED25519_P
_ED25519_D2 = 2 * _ED25519_D % _ED25519_P
_ED25519_SQRT_M1 = pow(2, (_ED25519_P - 1) // 4, _ED25519_P)  # a square root of -1
# SubjectPublicKeyInfo of an Ed25519 key (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 },
# BIT STRING (0 unused bits) } followed by the 32 key bytes
_ED25519_SPKI_PREFIX = binascii.unhexlify("302a300506032b6570032100")


def _ed25519_add(P, Q):
    """Sum of two points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
    (RFC 8032 5.1.4, complete for all inputs)."""
    p = _ED25519_P
    X1, Y1, Z1, T1 = P
    X2, Y2, Z2, T2 = Q
    A = (Y1 - X1) * (Y2 - X2) % p
    B = (Y1 + X1) * (Y2 + X2) % p
    C = T1 * _ED25519_D2 * T2 % p
    D = 2 * Z1 * Z2 % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def _ed25519_double(P):
    """2P in extended coordinates (RFC 8032 5.1.4 doubling formulas)."""
    p = _ED25519_P
    X1, Y1, Z1, _ = P
    A = X1 * X1 % p
    B = Y1 * Y1 % p
    C = 2 * Z1 * Z1 % p
    H = A + B
    S = X1 + Y1
    E = H - S * S % p
    G = A - B
    F = C + G
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def _ed25519_encode(P):
    """The 32-byte encoding of a point: y little-endian, the sign of x in the top bit."""
    p = _ED25519_P
    X, Y, Z, _ = P
    z_inv = pow(Z, p - 2, p)
    x, y = X * z_inv % p, Y * z_inv % p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _ed25519_decode(data):
    """The point a 32-byte encoding names, or None where RFC 8032 5.1.3 says decoding fails."""
    p = _ED25519_P
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= p:
        return None  # non-canonical y
    u = (y * y - 1) % p
    v = (_ED25519_D * y * y + 1) % p
    v3 = v * v * v % p
    x = u * v3 * pow(u * v3 * v3 * v % p, (p - 5) // 8, p) % p
    vxx = v * x * x % p
    if vxx == (-u) % p:
        x = x * _ED25519_SQRT_M1 % p
    elif vxx != u:
        return None  # x^2 = u/v has no solution: not a curve point
    if x == 0 and sign:
        return None  # "negative zero"
    if (x & 1) != sign:
        x = p - x
    return (x, y, 1, x * y % p)


def _ed25519_is_identity(P):
    X, Y, Z, _ = P
    return X % _ED25519_P == 0 and (Y - Z) % _ED25519_P == 0


def _ed25519_small_order(P):
    """True for the 8 points whose order divides the cofactor 8 (identity included)."""
    for _ in range(3):
        P = _ed25519_double(P)
    return _ed25519_is_identity(P)


def _ed25519_base_point():
    y = 4 * pow(5, _ED25519_P - 2, _ED25519_P) % _ED25519_P
    return _ed25519_decode(y.to_bytes(32, "little"))  # x "positive" (even), per RFC 8032 5.1


_ED25519_B = _ed25519_base_point()


def _ed25519_double_scalar_mult(s, P, k, Q):
    """[s]P + [k]Q by one shared chain of doublings (Straus/Shamir): about 253 doublings and 190
    additions, where two separate multiplications would double twice as often."""
    table = (None, P, Q, _ed25519_add(P, Q))
    R = (0, 1, 1, 0)  # the identity
    for bit in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        R = _ed25519_double(R)
        index = ((s >> bit) & 1) | (((k >> bit) & 1) << 1)
        if index:
            R = _ed25519_add(R, table[index])
    return R


def ed25519_verify(public_key, signature, message):
    """True if `signature` (64 bytes) is a valid Ed25519 signature of `message` under
    `public_key` (32 raw bytes), by RFC 8032 5.1.7; False otherwise (never raises for bad input)."""
    public_key, signature, message = bytes(public_key), bytes(signature), bytes(message)
    if len(public_key) != 32 or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _ED25519_L:
        return False  # non-canonical S (malleability)
    A = _ed25519_decode(public_key)
    if A is None or _ed25519_small_order(A):
        return False
    r_bytes = signature[:32]
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % _ED25519_L
    X, Y, Z, T = A
    minus_A = ((-X) % _ED25519_P, Y, Z, (-T) % _ED25519_P)
    return _ed25519_encode(_ed25519_double_scalar_mult(s, _ED25519_B, k, minus_A)) == r_bytes


def ed25519_public_key_from_pem(data):
    """The 32 raw bytes of an Ed25519 public key in PEM (SubjectPublicKeyInfo, as `edgebuild
    keygen` and `openssl pkey -pubout` write it). Raises ValueError for anything else."""
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("not a PEM file (non-ASCII bytes)")
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    start = data.find(begin)
    stop = data.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise ValueError("no '%s' block (an Ed25519 public key in PEM is expected)" % begin)
    body = "".join(data[start + len(begin) : stop].split())
    try:
        der = base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the PEM block is not valid base64")
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise ValueError("not an Ed25519 public key (another algorithm, or a malformed key)")
    return der[len(_ED25519_SPKI_PREFIX) :]


def ed25519_public_key_problem(pem):
    """Why a PEM public key cannot be trusted to verify anything, or None. The loader asks this
    before any backend: OpenSSL (and so `cryptography`) accepts keys of small order, under which
    a signature with S = 0 "verifies" every message."""
    try:
        raw = ed25519_public_key_from_pem(pem)
    except ValueError as exc:
        return str(exc)
    point = _ed25519_decode(raw)
    if point is None:
        return "the key is not a valid Ed25519 point encoding"
    if _ed25519_small_order(point):
        return "the key is a point of small order (it would accept forged signatures)"
    return None

"""Keys and tokens for the JWT tests, made by PyJWT on pyca cryptography,
independently of ringway. `make_jwt.py DIR` writes DIR/jwks.json (an RSA,
an EC P-256 and an Ed25519 public key, kids rsa1, ec1, ed1, and a second
RSA key, rsa2), DIR/secret (an HMAC secret) and prints one JSON object of
named tokens: good ones for each algorithm, and one for each way a token
is refused."""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

out = sys.argv[1]
now = int(time.time())
ISS, AUD = "https://issuer.test", "ringway-api"

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa2_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
secret = base64.urlsafe_b64encode(os.urandom(32)).decode()

def jwk(alg, key, kid, name):
    d = alg.to_jwk(key.public_key(), as_dict=True)
    d["kid"] = kid
    d["use"] = "sig"
    d["alg"] = name
    return d

jwks = {"keys": [
    jwk(RSAAlgorithm, rsa_key, "rsa1", "RS256"),
    jwk(ECAlgorithm, ec_key, "ec1", "ES256"),
    jwk(OKPAlgorithm, ed_key, "ed1", "EdDSA"),
    jwk(RSAAlgorithm, rsa2_key, "rsa2", "RS256"),
]}
with open(os.path.join(out, "jwks.json"), "w") as f:
    json.dump(jwks, f)
with open(os.path.join(out, "secret"), "w") as f:
    f.write(secret + "\n")
rsa_pub_pem = rsa_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

def claims(**over):
    c = {"sub": "alice", "scope": "read write", "iss": ISS, "aud": AUD,
         "iat": now, "nbf": now - 10, "exp": now + 600, "role": ["admin", "ops"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def by_hand(header, payload, key):
    """A token signed with HMAC-SHA256 under any bytes (PyJWT refuses a PEM
    as an HMAC secret, which is the point of the confusion attack)."""
    msg = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    sig = hmac.new(key, msg.encode(), hashlib.sha256).digest()
    return msg + "." + b64(sig)

rs = lambda c, kid="rsa1", key=rsa_key, alg="RS256": jwt.encode(c, key, algorithm=alg, headers={"kid": kid})
good_rs = rs(claims())
other = rs(claims(sub="mallory"))
none_token = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims()).encode()) + "."

tokens = {
    "rs256": good_rs,
    "es256": jwt.encode(claims(sub="erin"), ec_key, algorithm="ES256", headers={"kid": "ec1"}),
    "eddsa": jwt.encode(claims(sub="eddie"), ed_key, algorithm="EdDSA", headers={"kid": "ed1"}),
    "hs256": jwt.encode(claims(sub="hank"), secret.encode(), algorithm="HS256"),
    "rs256_kid2": rs(claims(sub="robin"), kid="rsa2", key=rsa2_key),
    "within_leeway": rs(claims(exp=now - 5)),
    "expired": rs(claims(exp=now - 120)),
    "nbf_future": rs(claims(nbf=now + 300)),
    "wrong_iss": rs(claims(iss="https://evil.test")),
    "wrong_aud": rs(claims(aud="someone-else")),
    "no_exp": rs(claims(exp=None)),
    "rs384": rs(claims(), alg="RS384"),
    "none": none_token,
    "confusion": by_hand({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(sub="mallory"), rsa_pub_pem),
    "bad_signature": ".".join(other.split(".")[:2] + [good_rs.split(".")[2]]),
    "unknown_kid": rs(claims(), kid="rsa9"),
    "wrong_key_for_kid": rs(claims(), kid="rsa1", key=rsa2_key),
    "garbage": "not.a.token",
}
print(json.dumps(tokens))

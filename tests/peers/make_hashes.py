"""htpasswd entries for a password, made independently of ringway: bcrypt
by the pyca `bcrypt` package ($2b$ and $2a$; $2y$ is the same algorithm
under PHP's prefix), {SHA} and {SSHA} by hashlib. Prints one JSON object."""

import base64
import hashlib
import json
import os
import sys

import bcrypt

password = sys.argv[1].encode()
salt = os.urandom(8)
print(json.dumps({
    "2b": bcrypt.hashpw(password, bcrypt.gensalt(rounds=5, prefix=b"2b")).decode(),
    "2a": bcrypt.hashpw(password, bcrypt.gensalt(rounds=5, prefix=b"2a")).decode(),
    "sha": "{SHA}" + base64.b64encode(hashlib.sha1(password).digest()).decode(),
    "ssha": "{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode(),
}))

#!/usr/bin/env python3
"""Makes vectors.json: session cookies written by Flask's own code.

Run with Flask installed (Debian: python3-flask):
    python3 testdata/gen_vectors.py > testdata/vectors.json
The timestamp is pinned so the output is reproducible.
"""
import json
import sys

import itsdangerous
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

NOW = 1_800_000_000


class PinnedSigner(itsdangerous.TimestampSigner):
    def get_timestamp(self):
        return NOW


def serializer(secret, fallbacks=()):
    app = Flask("vectors")
    app.secret_key = secret
    app.config["SECRET_KEY_FALLBACKS"] = list(fallbacks)
    iface = SecureCookieSessionInterface()
    s = iface.get_signing_serializer(app)
    s.signer = PinnedSigner
    return s


cases = [
    ("small", "flask-secret-key-0123456789", {"user_id": 42, "name": "ada"}),
    ("unicode", "flask-secret-key-0123456789", {"greeting": "h\u00e9llo \u2603", "n": [1, 2.5, None, True]}),
    ("compressed", "flask-secret-key-0123456789", {"cart": ["item-%d" % (i % 3) for i in range(60)]}),
    ("tagged", "flask-secret-key-0123456789", {"pair": (1, 2), "raw": b"\x00\x01", "_permanent": True}),
    ("other-key", "another-secret-key-abcdefgh", {"user_id": 7}),
]
out = []
for name, secret, data in cases:
    out.append({"name": name, "secret": secret, "cookie": serializer(secret).dumps(data),
                "json": json.loads(serializer(secret).serializer.dumps(data)), "now": NOW})
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")

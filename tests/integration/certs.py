"""certs.py - certificates for the TLS tests, made with the openssl command.

make_pki(DIR) writes, once per directory, a small PKI for loopback:

  ca.pem, ca.key                 the CA that signs the broker's certificate and
                                 the good client certificates
  server.pem, server.key         CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
  other-ca.pem, other-ca.key     a CA nobody trusts
  alice.pem, alice.key           client certificate CN=alice, by ca
  nobody.pem, nobody.key         client certificate CN=nobody, by ca
  stranger.pem, stranger.key     client certificate CN=alice, by other-ca
  expired.pem, expired.key       client certificate CN=alice, by ca, valid in 2020 only

Every key is EC P-256 (cheap handshakes).  Nothing here reaches the network.
"""

import os
import subprocess

OPENSSL = "openssl"


def _run(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(name, cwd):
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key",
         cwd=cwd)


def _ca(name, cn, cwd):
    _key(name, cwd)
    _run("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem", "-days", "3650",
         "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _signed(name, cn, ca, cwd, ext, start=None, end=None):
    """A certificate for NAME signed by CA, with extensions EXT; START/END: validity (YYYYMMDDHHMMSSZ)."""
    _key(name, cwd)
    _run("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=cwd)
    with open(os.path.join(cwd, name + ".ext"), "w") as f:
        f.write(ext)
    if start is None:
        _run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "3650", "-extfile", name + ".ext",
             cwd=cwd)
        return
    # Dates in the past need `openssl ca`, which wants a database of its own.
    db = os.path.join(cwd, ca + ".db")
    for d in (db,):
        os.makedirs(d, exist_ok=True)
    open(os.path.join(db, "index.txt"), "a").close()
    serial = os.path.join(db, "serial")
    if not os.path.exists(serial):
        with open(serial, "w") as f:
            f.write("1000\n")
    conf = os.path.join(cwd, name + ".cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nserial = %s\n"
                "new_certs_dir = %s\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n" % (db, serial, db))
    _run("ca", "-batch", "-config", conf, "-cert", ca + ".pem", "-keyfile", ca + ".key",
         "-in", name + ".csr", "-out", name + ".pem", "-startdate", start, "-enddate", end,
         "-extfile", name + ".ext", "-notext", cwd=cwd)


def make_pki(d):
    """Writes the files above into D (once); returns D."""
    if os.path.exists(os.path.join(d, "done")):
        return d
    os.makedirs(d, exist_ok=True)
    server_ext = ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                  "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    _ca("ca", "pigeon test CA", d)
    _ca("other-ca", "someone else's CA", d)
    _signed("server", "localhost", "ca", d, server_ext)
    _signed("alice", "alice", "ca", d, client_ext)
    _signed("nobody", "nobody", "ca", d, client_ext)
    _signed("stranger", "alice", "other-ca", d, client_ext)
    _signed("expired", "alice", "ca", d, client_ext, start="20200101000000Z", end="20200102000000Z")
    open(os.path.join(d, "done"), "w").close()
    return d

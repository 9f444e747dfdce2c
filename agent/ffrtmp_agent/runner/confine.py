"""Files on the job's volumes, opened so that nothing outside the volumes can be read or written, whatever
symbolic links a volume holds (a volume is shared: anyone with access to its storage can plant links).

A path is first resolved (os.path.realpath) and must stay inside the real path of its volume's mountPath;
then it is opened component by component from the volume's root with O_NOFOLLOW (and O_DIRECTORY for
folders), so a link swapped in after the check makes the open fail instead of leading elsewhere. ffmpeg
gets what was opened, not a path: /proc/self/fd/<fd> (a regular file, or a folder for names inside it),
inherited through pass_fds. Outputs are created with O_CREAT|O_EXCL|O_NOFOLLOW in the opened folder and
renamed there with renameat (which replaces a link at the final name instead of following it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat

from ffrtmp_api import paths

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Confined(Exception):
    """A path that leaves its volume, or cannot be opened without following a link; the message says why.
    `final`: the spec's fault (a link, a path outside the volumes), not a passing condition (a full disk)."""

    def __init__(self, message: str, *, final: bool = True) -> None:
        super().__init__(message)
        self.final = final


def fd_path(fd: int, name: str | None = None) -> str:
    """How a child process names what `fd` (inherited) refers to, or `name` inside that folder."""
    return f"/proc/self/fd/{fd}" + (f"/{name}" if name else "")


def volume_of(path: str, mounts: list[str], *, itself: bool = False) -> str:
    """The deepest mountPath `path` lies under (ffrtmp_api.paths rules), or is when `itself`; "/" when the
    plan names none (older operators): every link on the way is then refused, not only those leading out."""
    if not mounts:
        return "/"
    root = paths.containing_root(path, mounts)
    if root is None or not (paths.under(path, root) or (itself and paths.within(path, root))):
        raise Confined(f"{path} is not under the mountPath of one of the job's volumes")
    return root


def _resolved(path: str, mount: str, *, what: str) -> tuple[str, list[str]]:
    """(the volume's real root, the components of `path`'s real path below it). Missing trailing components
    are kept as written (realpath leaves them). Links inside the volume are fine; one leading out is not."""
    root = os.path.realpath(mount)
    real = os.path.realpath(path)
    if not paths.within(real, root):
        raise Confined(f"{what} {path} leads outside its volume {mount} through a symbolic link")
    relative = posixpath.relpath(real, root)
    return root, [] if relative == "." else relative.split("/")


def _explain(exc: OSError, path: str, what: str) -> Confined:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return Confined(f"{what} {path} changed into a symbolic link while it was opened; links are not followed")
    return Confined(f"{what} {path}: {exc.strerror or exc}", final=False)


def _walk(root: str, parts: list[str], *, create: bool, path: str, what: str) -> int:
    """An O_DIRECTORY fd of root/parts, each component opened with O_NOFOLLOW (made first when `create`)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _explain(exc, path, what) from None
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        raise _explain(exc, path, what) from None
    return fd


def open_folder(path: str, mounts: list[str], *, create: bool = False, what: str = "folder") -> int:
    """An O_DIRECTORY fd of folder `path` on a volume (the volume's root itself included), its missing
    components made (0o777 & umask) when `create`. Raises Confined."""
    root, parts = _resolved(path, volume_of(path, mounts, itself=True), what=what)
    return _walk(root, parts, create=create, path=path, what=what)


def open_input(path: str, mounts: list[str]) -> int:
    """A read-only fd of the regular file `path` on a volume. Raises Confined (FIFOs, devices and sockets
    are refused too: a FIFO would hang the job, a device node is not media)."""
    what = "the input"
    root, parts = _resolved(path, volume_of(path, mounts), what=what)
    if not parts:
        raise Confined(f"{what} {path} is not a regular file")
    folder = _walk(root, parts[:-1], create=False, path=path, what=what)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        raise Confined(f"{what} {path}: No such file or directory") from None
    except OSError as exc:
        raise _explain(exc, path, what) from None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Confined(f"{what} {path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


class OutputFolder:
    """The output's folder, opened once: temp files are created in it and renamed in it, by name relative
    to this fd, so no later link on the way can redirect a write."""

    def __init__(self, path: str, mounts: list[str]) -> None:
        self.path = path
        self.fd = open_folder(path, mounts, create=True, what="the output folder")

    def create(self, name: str) -> int:
        """A new, empty file `name` (O_EXCL: never an existing file, never through a link); one left from an
        earlier run of this attempt is removed first (it is ours: a hidden per-attempt name)."""
        _plain_name(name)
        self.remove(name)
        try:
            return os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=self.fd
            )
        except OSError as exc:
            raise Confined(f"cannot create {posixpath.join(self.path, name)}: {exc.strerror}", final=False) from None

    def rename(self, name: str, final: str) -> None:
        os.rename(_plain_name(name), _plain_name(final), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def remove(self, name: str) -> None:
        """Removes `name` (a link itself, never what it points to)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_plain_name(name), dir_fd=self.fd)

    def remove_links(self, names: list[str]) -> None:
        """Removes links at names ffmpeg will create itself (HLS playlist and segments)."""
        for name in names:
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(name, dir_fd=self.fd).st_mode):
                    os.unlink(name, dir_fd=self.fd)

    def listing(self) -> list[str]:
        return os.listdir(self.fd)

    def size(self, name: str) -> int:
        try:
            st = os.stat(_plain_name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    def child_path(self, name: str) -> str:
        return fd_path(self.fd, _plain_name(name))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _plain_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise Confined(f"{name!r} is not a file name")
    return name

"""What ``install`` and ``uninstall`` do to the machine, behind one small object: run a command,
write a file, make a folder, add a user, change an owner.

``HostSystem`` acts on the real machine. ``RootSystem`` acts on a folder standing in for ``/``:
files are written there, the user database is its ``etc/passwd`` and ``etc/group``, and commands
are recorded instead of run (an image build, or a test that checks what would have run).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class System(Protocol):
    def path(self, path: str) -> Path:
        """Where an absolute path of the target lives on this machine."""
        ...

    def run(self, argv: Sequence[str]) -> int: ...

    def write(self, path: str, data: bytes, mode: int) -> bool:
        """Write when the content or the mode differs; True when something changed."""
        ...

    def mkdir(self, path: str, mode: int) -> bool: ...

    def remove(self, path: str) -> bool:
        """Remove a file or a whole folder; True when there was one."""
        ...

    def chown(self, path: str, user: str, group: str) -> bool: ...

    def group_exists(self, name: str) -> bool: ...

    def user_groups(self, name: str) -> set[str] | None:
        """The user's supplementary groups; None when there is no such user."""
        ...

    def add_user(self, name: str, home: str) -> None: ...

    def add_to_groups(self, name: str, groups: Sequence[str]) -> None: ...

    def remove_user(self, name: str) -> bool: ...


def _write_atomic(target: Path, data: bytes, mode: int) -> bool:
    try:
        st = target.stat()
        if target.read_bytes() == data:
            if st.st_mode & 0o7777 == mode:
                return False
            target.chmod(mode)
            return True
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)  # before the content: a secret is never readable by others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _mkdir(target: Path, mode: int) -> bool:
    if target.is_dir():
        if target.stat().st_mode & 0o7777 == mode:
            return False
        target.chmod(mode)
        return True
    target.mkdir(parents=True, mode=mode)
    target.chmod(mode)  # mkdir's mode passes through the umask
    return True


def _remove(target: Path) -> bool:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
        return True
    if target.exists() or target.is_symlink():
        target.unlink()
        return True
    return False


class HostSystem:
    """The machine itself (needs root for most of it)."""

    def path(self, path: str) -> Path:
        return Path(path)

    def run(self, argv: Sequence[str]) -> int:
        print("+ " + " ".join(argv), file=sys.stderr)
        return subprocess.run(list(argv), check=False).returncode

    def write(self, path: str, data: bytes, mode: int) -> bool:
        return _write_atomic(Path(path), data, mode)

    def mkdir(self, path: str, mode: int) -> bool:
        return _mkdir(Path(path), mode)

    def remove(self, path: str) -> bool:
        return _remove(Path(path))

    def chown(self, path: str, user: str, group: str) -> bool:
        st = os.stat(path)
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        if (st.st_uid, st.st_gid) == (uid, gid):
            return False
        os.chown(path, uid, gid)
        return True

    def group_exists(self, name: str) -> bool:
        try:
            grp.getgrnam(name)
        except KeyError:
            return False
        return True

    def user_groups(self, name: str) -> set[str] | None:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return None
        return {g.gr_name for g in grp.getgrall() if name in g.gr_mem}

    def add_user(self, name: str, home: str) -> None:
        rc = self.run(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
                       "--shell", "/usr/sbin/nologin", name])
        if rc != 0:
            raise OSError(f"useradd {name} failed (exit {rc})")

    def add_to_groups(self, name: str, groups: Sequence[str]) -> None:
        rc = self.run(["usermod", "--append", "--groups", ",".join(groups), name])
        if rc != 0:
            raise OSError(f"usermod {name} failed (exit {rc})")

    def remove_user(self, name: str) -> bool:
        if self.user_groups(name) is None:
            return False
        return self.run(["userdel", name]) == 0


class RootSystem:
    """A folder standing in for ``/``; ``commands`` holds what would have run, in order."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.commands: list[list[str]] = []
        self.owners: dict[str, tuple[str, str]] = {}
        self._fresh: set[str] = set()  # paths this run created or changed

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def run(self, argv: Sequence[str]) -> int:
        self.commands.append(list(argv))
        return 0

    def write(self, path: str, data: bytes, mode: int) -> bool:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        changed = _write_atomic(target, data, mode)
        if changed:
            self._fresh.add(path)
        return changed

    def mkdir(self, path: str, mode: int) -> bool:
        changed = _mkdir(self.path(path), mode)
        if changed:
            self._fresh.add(path)
        return changed

    def remove(self, path: str) -> bool:
        return _remove(self.path(path))

    def chown(self, path: str, user: str, group: str) -> bool:
        """Recorded, not done (a test runs unprivileged); a change only for what this run wrote."""
        self.owners[path] = (user, group)
        return path in self._fresh

    # the user database: etc/passwd and etc/group under the root
    def _table(self, name: str) -> list[list[str]]:
        try:
            text = self.path(f"/etc/{name}").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line.split(":") for line in text.splitlines() if line.strip()]

    def _save(self, name: str, rows: list[list[str]]) -> None:
        self.write(f"/etc/{name}", "".join(":".join(r) + "\n" for r in rows).encode(), 0o644)

    def group_exists(self, name: str) -> bool:
        return any(r[0] == name for r in self._table("group"))

    def user_groups(self, name: str) -> set[str] | None:
        if not any(r[0] == name for r in self._table("passwd")):
            return None
        return {r[0] for r in self._table("group") if len(r) > 3 and name in r[3].split(",")}

    def add_user(self, name: str, home: str) -> None:
        self.commands.append(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
                              "--shell", "/usr/sbin/nologin", name])
        groups = self._table("group")
        gid = str(max([999] + [int(r[2]) for r in groups if r[2].isdigit() and int(r[2]) < 1000]) + 1)
        self._save("group", [*groups, [name, "x", gid, ""]])
        self._save("passwd", [*self._table("passwd"), [name, "x", gid, gid, "", home, "/usr/sbin/nologin"]])

    def add_to_groups(self, name: str, groups: Sequence[str]) -> None:
        self.commands.append(["usermod", "--append", "--groups", ",".join(groups), name])
        rows = self._table("group")
        for r in rows:
            if r[0] in groups:
                while len(r) < 4:
                    r.append("")
                members = [m for m in r[3].split(",") if m]
                r[3] = ",".join([*members, name])
        self._save("group", rows)

    def remove_user(self, name: str) -> bool:
        if self.user_groups(name) is None:
            return False
        self.commands.append(["userdel", name])
        self._save("passwd", [r for r in self._table("passwd") if r[0] != name])
        rows = [r for r in self._table("group") if r[0] != name]
        for r in rows:
            if len(r) > 3:
                r[3] = ",".join(m for m in r[3].split(",") if m and m != name)
        self._save("group", rows)
        return True


__all__ = ["HostSystem", "RootSystem", "System"]

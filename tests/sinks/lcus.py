"""An LCUS (CH340) relay board emulator on the master side of a pty: checks every 4-byte frame."""

from __future__ import annotations

import os
import select
import threading
import time
import tty


class LcusEmulator:
    """Reads ``A0 <ch> <state> <sum>`` frames; records (monotonic time, channel, state), and errors."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.frames: list[tuple[float, int, int]] = []
        self.errors: list[str] = []
        self.on = False
        self._buf = b""
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lcus-emulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 256)
            except OSError:  # no slave open right now (the agent was killed): wait for the next one
                time.sleep(0.01)
                continue
            now = time.monotonic()
            self._buf += data
            while len(self._buf) >= 4:
                f, self._buf = self._buf[:4], self._buf[4:]
                self._check(now, f)

    def _check(self, now: float, f: bytes) -> None:
        head, ch, state, csum = f
        if head != 0xA0 or not 1 <= ch <= 16 or state not in (0, 1) or csum != (0xA0 + ch + state) & 0xFF:
            self.errors.append(f"bad frame {f.hex()}")
            self._buf = b""  # resynchronise like the board would
            return
        with self._changed:
            self.frames.append((now, ch, state))
            self.on = bool(state)
            self._changed.notify_all()

    def wait_for(self, state: int, after: int = 0, timeout: float = 5.0) -> tuple[float, int, int]:
        """The first frame with ``state`` at index >= after."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for f in self.frames[after:]:
                    if f[2] == state:
                        return f
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no frame with state {state}; frames={self.frames} errors={self.errors}")
                self._changed.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        os.close(self.master)
        os.close(self.slave)

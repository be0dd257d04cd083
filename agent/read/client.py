"""HTTP clients for Plate Recognizer: the cloud Snapshot API and the on-premise SDK.

One ``requests.Session`` per reader. ``read(crop)`` uploads one crop and returns its plates in frame
pixels, or raises a typed ``ReaderError`` (see ``errors.py``); no ``requests`` exception escapes.
The cloud token is sent in a header only and scrubbed from every message we build.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, UTC
from typing import Any

import requests

from .. import httpdeadline, redact
from ..config import ReaderConfig
from ..environ import secret
from ..errors import ConfigError
from ..types import PlateCrop, PlateRead
from .errors import (
    BadResponse,
    ConnectionFailed,
    Forbidden,
    Rejected,
    ServerError,
    Throttled,
    Timeout,
    TooLarge,
)
from .parse import Usage, decode_json, jpeg_size, parse_reads, parse_usage

logger = logging.getLogger(__name__)

CLOUD_URL = "https://api.platerecognizer.com/v1/plate-reader/"
CLOUD_STATS_URL = "https://api.platerecognizer.com/v1/statistics/"
SDK_URL = "http://localhost:8080/v1/plate-reader/"
TOKEN_ENV = "PLATE_RECOGNIZER_TOKEN"
MAX_ANSWER_BYTES = 1_000_000  # a real answer is a few kB; more is broken or hostile
_RETRY_HINT = re.compile(r"available in (\d{1,6}(?:\.\d{1,6})?) second")


def iso_utc(wall_time: float) -> str:
    """``2019-08-19T13:11:25.123456Z``: the API wants ISO 8601 in UTC."""
    return datetime.fromtimestamp(wall_time, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HttpReader:
    """Shared by both backends: multipart upload, status -> error type, capped answer, parsing."""

    kind = "http"
    default_url = ""
    needs_token = False  # the cloud: from the environment or a systemd credential

    def __init__(
        self,
        cfg: ReaderConfig,
        *,
        cameras: Mapping[str, ReaderConfig] | None = None,
        token: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        url = cfg.url or self.default_url
        self.url = url if url.endswith("/") else url + "/"
        self._cameras = dict(cameras or {})
        if self.needs_token:
            token = token or secret(TOKEN_ENV, environ)
            if not token:
                raise ConfigError(
                    f"reader.type = \"{self.kind}\" needs the {TOKEN_ENV} environment variable"
                    " or systemd credential"
                )
        self._token = token or ""
        self._session: requests.Session | None = None  # reader.config is JSON-ready: checked at load

    # ------------------------------------------------------------ protocol

    def read(self, crop: PlateCrop) -> list[PlateRead]:
        return self.read_raw(crop)[1]

    def read_raw(self, crop: PlateCrop) -> tuple[Any, list[PlateRead]]:
        """The decoded answer and the reads parsed from it."""
        status, body, headers = self._request(
            "POST",
            self.url,
            data=self._fields(crop),
            files={"upload": ("crop.jpg", crop.jpeg, "image/jpeg")},
        )
        self._check_status(status, body, headers)
        doc = decode_json(body)
        return doc, parse_reads(doc, crop, jpeg_size(crop.jpeg))

    def usage(self) -> Usage | None:
        url = self.usage_url()
        if not url:
            return None
        status, body, headers = self._request("GET", url)
        self._check_status(status, body, headers)
        return parse_usage(decode_json(body))

    def usage_url(self) -> str:
        return ""

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------ request

    def _fields(self, crop: PlateCrop) -> list[tuple[str, str]]:
        rc = self._cameras.get(crop.camera_id, self.cfg)
        fields = [("regions", r) for r in rc.regions]
        fields.append(("camera_id", crop.camera_id))
        fields.append(("timestamp", iso_utc(crop.wall_time)))
        if rc.mmc:
            fields.append(("mmc", "true"))
        if rc.config:
            fields.append(("config", json.dumps(rc.config, separators=(",", ":"))))
        return fields

    def _headers(self) -> dict[str, str]:
        return {}

    def _get_session(self) -> requests.Session:
        if self._session is None:
            self._session = httpdeadline.session()
            self._session.headers.update(self._headers())
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def _request(self, method: str, url: str, **kw: Any) -> tuple[int, bytes, Mapping[str, str]]:
        # silent for timeout_read_s, or not done within connect + read timeouts in all (connect,
        # upload, answer): a server trickling its answer a byte at a time is cut off there
        total_s = self.cfg.timeout_connect_s + self.cfg.timeout_read_s
        what = f"{self.kind} reader {method}"
        try:
            answer = httpdeadline.fetch(
                self._get_session(), method, url, connect_s=self.cfg.timeout_connect_s,
                read_s=self.cfg.timeout_read_s, total_s=total_s, max_bytes=MAX_ANSWER_BYTES, **kw)
        except httpdeadline.DeadlineExceeded as err:
            raise Timeout(f"{what}: {err}") from err
        except httpdeadline.AnswerTooLarge as err:
            raise BadResponse(f"{what}: answer larger than {MAX_ANSWER_BYTES} bytes") from err
        except httpdeadline.RequestFailed as err:
            raise ConnectionFailed(f"{what}: {err}") from err
        return answer.status, answer.body, answer.headers

    def _detail(self, body: bytes) -> str:
        """The API's ``detail`` text, short and scrubbed, for messages; "" if absent."""
        try:
            doc = json.loads(body[:4096].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return ""
        detail = doc.get("detail") if isinstance(doc, dict) else None
        if not isinstance(detail, str):
            return ""
        return self._scrub(detail[:160]).encode("ascii", "replace").decode("ascii")

    def _check_status(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        if 200 <= status < 300:
            return
        detail = self._detail(body)
        msg = f"{self.kind} reader: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            raise Forbidden(msg)
        if status == 413:
            raise TooLarge(msg)
        if status == 429:
            raise Throttled(msg, _retry_after(detail, headers))
        if status >= 500 or status in (404, 405, 408):
            # 404/405: a proxy or a wrong reader.url; keep the crops until it is fixed
            raise ServerError(msg, status)
        raise Rejected(msg, status)


def _retry_after(detail: str, headers: Mapping[str, str]) -> float:
    m = _RETRY_HINT.search(detail)
    value = m.group(1) if m else str(headers.get("Retry-After", ""))
    try:
        return min(max(float(value), 0.0), 3600.0)
    except ValueError:
        return 1.0


class CloudReader(HttpReader):
    """Snapshot API in the cloud; the token comes from the environment or a systemd credential."""

    kind = "cloud"
    default_url = CLOUD_URL
    needs_token = True

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._token}"}

    def usage_url(self) -> str:
        if not self.cfg.url:
            return CLOUD_STATS_URL
        return requests.compat.urljoin(self.url, "../statistics/")

    def __repr__(self) -> str:
        return f"CloudReader(url={redact.url(self.url)!r})"


class SdkReader(HttpReader):
    """The on-premise SDK container: same API, no token, usage from ``GET /info/``."""

    kind = "sdk"
    default_url = SDK_URL

    def usage_url(self) -> str:
        return requests.compat.urljoin(self.url, "/info/")

    def __repr__(self) -> str:
        return f"SdkReader(url={redact.url(self.url)!r})"


__all__ = ["CLOUD_URL", "SDK_URL", "CloudReader", "HttpReader", "SdkReader", "iso_utc"]

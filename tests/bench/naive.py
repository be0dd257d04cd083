"""The naive baseline, as Plate Recognizer's sample scripts do it: read the stream and upload one
full frame a second, synchronously. One JSON line per upload on stdout; ends with the stream.

    .venv/bin/python -m tests.bench.naive RTSP_URL API_URL [--every-s 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time

import cv2
import requests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("api")
    ap.add_argument("--every-s", type=float, default=1.0)
    ap.add_argument("--token", default="")
    args = ap.parse_args(argv)
    headers = {"Authorization": f"Token {args.token}"} if args.token else {}
    cap = cv2.VideoCapture(args.url, cv2.CAP_FFMPEG)
    session = requests.Session()
    next_at = 0.0
    while True:
        ok, img = cap.read()
        captured = time.time()
        if not ok:
            break
        if captured < next_at:
            continue
        next_at = captured + args.every_s
        _, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        stamp = dt.datetime.fromtimestamp(captured, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            r = session.post(args.api, files={"upload": ("frame.jpg", jpeg.tobytes())},
                             data={"regions": "gb", "timestamp": stamp}, headers=headers, timeout=10)
            plates = [x.get("plate", "") for x in r.json().get("results", [])] if r.ok else []
            status = str(r.status_code)
        except (requests.RequestException, ValueError) as err:
            plates, status = [], str(err)[:80]
        print(json.dumps({"captured": captured, "answered": time.time(), "status": status,
                          "bytes": len(jpeg), "plates": plates}), flush=True)
    cap.release()
    use = resource.getrusage(resource.RUSAGE_SELF)  # the stream ended: the bench reads its cost here
    print(json.dumps({"end": time.time(), "cpu_s": use.ru_utime + use.ru_stime,
                      "maxrss_mb": use.ru_maxrss / 1024}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

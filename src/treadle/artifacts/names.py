"""Artifact names and content types come from users: check them before anything is stored.

A name is a logical path (``hls/720p/seg_00001.ts``): 1-255 characters of printable
Unicode (no surrogates, no control characters), segments separated by ``/``, none of them
empty, ``.`` or ``..``, no backslash. Names never become storage paths (objects are
addressed by sha256), but they do become file names on download, so they are kept tame.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from treadle.core.errors import InvalidInput

MAX_NAME = 255
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_EXTRA_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t",
                ".m4a": "audio/mp4", ".mp4": "video/mp4", ".jpg": "image/jpeg",
                ".json": "application/json"}


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput("an artifact name must be a string")
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"an artifact name must be 1-{MAX_NAME} characters long",
                           detail={"length": len(name)})
    for ch in name:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Cn", "Zl", "Zp") or ch == "\\":
            raise InvalidInput("an artifact name may not contain control characters, "
                               "surrogates, unassigned code points or backslashes")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidInput("an artifact name's /-separated segments may not be empty, "
                               "'.' or '..'", detail={"name": name[:80]})
    return name


def check_content_type(content_type: object, name: str) -> str:
    """The given type (checked: it is echoed in HTTP headers) or one guessed from ``name``."""
    if content_type is None:
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        guessed = _EXTRA_TYPES.get(ext) or mimetypes.guess_type(name, strict=False)[0]
        return guessed or "application/octet-stream"
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type.lower()):
        raise InvalidInput("content_type must look like type/subtype (no parameters)")
    return content_type.lower()


def download_name(name: str) -> str:
    """The last segment of a (checked) name: what a downloaded file is called."""
    return name.rsplit("/", 1)[-1]

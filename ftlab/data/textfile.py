"""Is a file text that the readers can take (UTF-8, not binary, with rows), and which separator does a CSV header
that read as one column look written with? Checked before a reader runs: their own errors say neither (a Latin-1
file passes as rows of replacement characters or fails deep in pandas, an empty one gives 'Instruction "train"
corresponds to no data'). The standard library only: `predict --file` checks its file before the model loads."""
from __future__ import annotations

import codecs
from pathlib import Path

from ftlab.errors import DataError

SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"))


def check_text_file(path: Path, flag: str = "--dataset", empty: str = "the train split is empty") -> None:
    """UTF-8 text with at least one row besides a CSV/TSV header (.txt, .json, .jsonl have none). Errors start with
    `flag path:`; `empty` says what a file without rows means for its reader."""
    needed = 1 if path.suffix.lower() in (".json", ".jsonl", ".txt") else 2
    decoder = codecs.getincrementaldecoder("utf-8")()
    found, offset, at_line_start = 0, 0, True
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                nul = chunk.find(b"\0")
                if nul >= 0:
                    raise DataError(f"{flag} {path}: a binary file, not {path.suffix} text (NUL byte at offset "
                                    f"{offset + nul})")
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise DataError(f"{flag} {path}: not UTF-8 text (byte 0x{chunk[exc.start]:02x} at offset "
                                    f"{offset + exc.start}); save it as UTF-8") from None
                offset += len(chunk)
                for line in text.splitlines(keepends=True) if found < needed else ():
                    found += at_line_start and bool(line.strip())
                    at_line_start = line.endswith(("\n", "\r"))
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{flag} {path}: not UTF-8 text (it ends inside a multi-byte character)") from None
    except OSError as exc:
        raise DataError(f"{flag} {path}: cannot read it: {exc.strerror}") from None
    if found < needed:
        raise DataError(f"{flag} {path}: {empty} (the file has no data rows)")


def delimiter_hint(columns: list[str]) -> str:
    """A file read as one column whose name holds another separator was most likely written with that one."""
    if len(columns) != 1:
        return ""
    found = [name for sep, name in SEPARATORS if sep in columns[0]]
    return (f"; the header looks separated by {found[0]}: a .csv must be comma-separated, a .tsv tab-separated"
            if found else "")


def header_columns(path: Path, separator: str) -> list[str]:
    """The first line of a text file, split at `separator`: what a reader takes for the columns."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return handle.readline().rstrip("\r\n").split(separator)

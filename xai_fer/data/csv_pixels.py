"""Fast reader for CSV files that hold each image as one column of space-separated pixel values.

FER2013's ``fer2013.csv`` and the homework ``train.csv``/``test.csv`` share this layout. The file is read a block
of lines at a time: small blocks keep numpy's temporaries in cache and reuse memory instead of faulting in fresh
pages, which is where a whole-file approach loses its time. Every block first takes a vectorised fast path that
accepts only well-formed rows. When it declines, the block is split again line by line and, if the pixels still do
not parse, read row by row: that either succeeds (quotes, unusual spacing) or raises a ``UserError`` naming the
file and line of the first bad row. So validation costs nothing until something is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from math import isqrt
from pathlib import Path
from typing import BinaryIO

from xai_fer.lazy import np

from ..errors import UserError
from ..limits import DATA_BYTES, IMAGE_PIXELS

BLOCK_BYTES = 1 << 19  # about 60 FER2013 rows: every temporary stays within the CPU caches
_ZERO = ord("0")  # a Python int keeps uint8 arithmetic in uint8 (NEP 50), without importing numpy early


def read_header(path: Path) -> tuple[str, ...]:
    """Lower-case column names from the first line of a ``.csv`` file, or () for anything else (for ``detect``)."""
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return ()
    with open(path, "rb") as handle:
        first = handle.read(4096).split(b"\n", 1)[0]
    try:
        return _column_names(first.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return ()


def _column_names(line: str) -> tuple[str, ...]:
    return tuple(name.strip().strip('"').strip().lower() for name in line.strip().split(","))


@dataclass
class PixelCsv:
    """A parsed pixel CSV: the pixel column as images, every other column as raw bytes for the caller to convert."""

    path: Path
    pixels: np.ndarray  # (rows, side, side) uint8
    columns: dict[str, list[bytes]]  # by lower-case header name; row i is line i + 2 of the file

    def error(self, row: int, message: str, hint: str | None = None) -> UserError:
        """A ``UserError`` that names the file and the line of data row ``row`` (0-based)."""
        return _error(self.path, row, message, hint)

    def codes(self, column: str, convert: Callable[[str], int]) -> np.ndarray:
        """``convert`` applied to each row of ``column``, as int64.

        ``convert`` runs once per distinct value (a label column has a handful); a ``ValueError`` it raises is
        reported with the first line that holds the offending value.
        """
        values = self.columns[column]
        table = {}
        for raw in dict.fromkeys(values):  # first-appearance order, so the earliest bad line is reported
            try:
                table[raw] = convert(raw.decode().strip())
            except ValueError as exc:
                raise self.error(values.index(raw), f"{column} {raw.decode()!r}: {exc}") from None
        return np.array([table[raw] for raw in values], dtype=np.int64)

    def integers(self, column: str, stop: int | None = None) -> np.ndarray:
        """Non-negative integers (below ``stop`` when given) from ``column``."""

        def convert(text: str) -> int:
            if not (text.isascii() and text.isdigit()) or (stop is not None and int(text) >= stop):
                raise ValueError("not an integer" + (f" in 0..{stop - 1}" if stop is not None else " >= 0"))
            return int(text)

        return self.codes(column, convert)


def read_pixel_csv(path: Path, pixel_column: str, required: Sequence[str] = ()) -> PixelCsv:
    """Read ``path``; its header must name ``pixel_column`` and every ``required`` column (case-insensitive).

    Bounded, in time and memory, whatever the file holds: its size must be within ``XAI_FER_MAX_DATA_BYTES``
    (counted while reading a stream, whose size is not known), and no line may be longer than a row of one
    image within ``XAI_FER_MAX_IMAGE_PIXELS`` can be (a 2 GB file of NUL bytes is one endless line)."""
    with open(path, "rb") as handle:
        DATA_BYTES.check(os.fstat(handle.fileno()).st_size, str(path))
        longest = _longest_line()
        header = handle.readline(longest + 1) if longest else handle.readline()
        if longest and len(header) > longest:
            raise _too_long(path, 1, longest)
        if not header.strip():
            raise UserError(f"{path}: empty file", "expected a header line, then one image per line")
        try:
            names = _column_names(header.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise UserError(f"{path}, line 1: not UTF-8 text", "save the file as UTF-8 (or ASCII)") from None
        for name in (pixel_column, *required):
            if name not in names:
                raise UserError(
                    f"{path}, line 1: no {name!r} column (header: {','.join(names)})",
                    f"the first line must name the columns, e.g. {','.join((*required, pixel_column))}",
                )
        return _Reader(path, names, names.index(pixel_column)).read(handle)


class _Reader:
    def __init__(self, path: Path, names: tuple[str, ...], pixel_index: int):
        self.path = path
        self.names = names
        self.pixel_index = pixel_index
        self.count = 0  # pixels per image, taken from the first row
        self.row = 0  # rows read so far; row i is line i + 2
        self.blank_row: int | None = None  # where trailing blank lines began: an error if more rows follow
        self.values: list[list[bytes]] = [[] for _ in names]
        self.pixels = np.empty((0, 0), np.uint8)  # allocated once the first row gives the image size
        self.size = 0  # file size in bytes

    def read(self, handle: BinaryIO) -> PixelCsv:
        self.size = os.fstat(handle.fileno()).st_size
        for block in self.blocks(handle):
            self.add(block)
        if not self.row:
            raise UserError(f"{self.path}: no data rows after the header", "add one image per line")
        self.pixels.resize((self.row, self.count), refcheck=False)  # shrinks in place: no copy
        side = isqrt(self.count)
        pixels = self.pixels.reshape(-1, side, side)
        columns = {name: values for index, (name, values) in enumerate(zip(self.names, self.values, strict=True))
                   if index != self.pixel_index}
        return PixelCsv(self.path, pixels, columns)

    def add(self, block: bytes) -> None:
        """Parse one block of complete lines, each ending in a newline."""
        if self.blank_row is not None:
            if block.strip():
                raise _error(self.path, self.blank_row, "empty line", "remove blank lines between the rows")
            return
        fast = self.count and block.isascii() and b'"' not in block
        columns = self.split_fast(block) if fast else None
        images = parse_pixels(columns[self.pixel_index], self.count, self.room(len(columns[0]))) if columns else None
        if images is None:  # the first block, quotes or a malformed line: go line by line, explaining errors
            columns = self.split(block)
            fields = columns[self.pixel_index]
            if not fields:
                return
            if not self.count:
                self.count = self.first_count(fields[0])
            images = parse_pixels(fields, self.count, self.room(len(fields)))
            if images is None:
                images = np.stack([self.parse_row(self.row + offset, field, self.count)
                                   for offset, field in enumerate(fields)], out=self.room(len(fields)))
        for index, (values, column) in enumerate(zip(self.values, columns, strict=True)):
            if index != self.pixel_index:
                values.extend(column)
        self.row += len(images)

    def blocks(self, handle: BinaryIO) -> Iterator[bytes]:
        """The rest of ``handle`` in blocks of whole lines, each line ending in a newline. A line longer than a
        block is gathered as pieces and joined once, when its end arrives: linear time however long it is
        (adding each block to the piece so far copied it again every time, quadratic in the line's length).
        A line longer than :func:`_longest_line`, and a stream past the data limit, are refused."""
        longest, budget = _longest_line(), DATA_BYTES.value()
        pieces: list[bytes] = []
        pending = total = 0  # bytes of the unfinished line; bytes read
        while block := handle.read(BLOCK_BYTES):
            total += len(block)
            if budget and total > budget:  # only a stream gets here: a file's size was checked before reading
                DATA_BYTES.check(total, str(self.path), " (read so far)")
            cut = block.rfind(b"\n") + 1
            if cut:
                yield b"".join([*pieces, block[:cut]]) if pieces else block[:cut]
                pieces, pending = [block[cut:]], len(block) - cut
            else:
                pieces.append(block)
                pending += len(block)
            if longest and pending > longest:
                raise _too_long(self.path, self.row + 2, longest)
        if pending:
            yield b"".join(pieces) + b"\n"

    def room(self, rows: int) -> np.ndarray:
        """Where the next ``rows`` images go: the output is allocated once, for the most rows a file of this size
        can hold (untouched pages cost nothing), so blocks are parsed straight into it without a final copy."""
        end = self.row + rows
        if not self.pixels.size:
            self.pixels = np.empty((max(end, self.size // (2 * self.count) + 1), self.count), np.uint8)
        elif end > len(self.pixels):  # only if the file grew while being read
            self.pixels.resize((2 * end, self.count), refcheck=False)
        return self.pixels[self.row : end]

    def split_fast(self, block: bytes) -> list[list] | None:
        """The block's fields by column when every line has the header's number of fields; None otherwise.

        Fields are cut at the commas nearest each end of the line, found with ``bytes.find`` (memchr, far faster
        than scanning every byte): a stray comma inside the pixel field then fails ``parse_pixels`` instead.
        Pixel fields stay views into the block, only joined for parsing; the other fields become bytes.
        """
        view, find, rfind = memoryview(block), block.find, block.rfind
        columns: list[list] = [[] for _ in self.names]
        head, pixels, tail = columns[: self.pixel_index], columns[self.pixel_index], columns[:self.pixel_index:-1]
        start = 0
        while (end := find(b"\n", start)) >= 0:
            if end == start:
                return None  # a blank line
            stop = end - 1 if block[end - 1] == 13 else end  # before a Windows "\r"
            for values in head:
                comma = find(b",", start, stop)
                if comma < 0:
                    return None
                values.append(block[start:comma])
                start = comma + 1
            for values in tail:
                comma = rfind(b",", start, stop)
                if comma < 0:
                    return None
                values.append(block[comma + 1 : stop])
                stop = comma
            pixels.append(view[start:stop])
            start = end + 1
        return columns

    def split(self, block: bytes) -> list[list[bytes]]:
        """The block's fields by column, line by line: handles quotes and blank lines, explains bad lines."""
        lines = [line.removesuffix(b"\r") for line in block.split(b"\n")[:-1]]
        content = len(lines)
        while content and not lines[content - 1]:
            content -= 1
        if b"" in lines[:content]:
            raise _error(self.path, self.row + lines.index(b""), "empty line", "remove blank lines between the rows")
        if content < len(lines):
            self.blank_row = self.row + content
            del lines[content:]
        if not all(line.isascii() for line in lines):
            self.check_utf8(lines)
        rows = [line.split(b",") for line in lines]
        if any(b'"' in line for line in lines):  # quoted fields, e.g. written by R's write.csv
            rows = [[field.strip(b'"') for field in fields] for fields in rows]
        for offset, fields in enumerate(rows):
            if len(fields) != len(self.names):
                raise _error(
                    self.path,
                    self.row + offset,
                    f"{len(fields)} comma-separated fields, but the header names {len(self.names)}",
                    f"each line needs {','.join(self.names)}",
                )
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in self.names]

    def first_count(self, field) -> int:
        # Counted in C before any value is parsed: a line of millions of values is refused without making a
        # Python object of each.
        count = count_tokens(bytes(field))
        if count == 0 or isqrt(count) ** 2 != count:
            raise _error(self.path, self.row, f"{count} pixel values do not make a square image",
                         "FER2013 rows have 2304 (48x48)")
        IMAGE_PIXELS.check(count, f"{self.path}, line {self.row + 2}", f" ({isqrt(count)}x{isqrt(count)})")
        self.parse_row(self.row, field, count)  # explains a bad value, if there is one
        return count

    def parse_row(self, row: int, field, count: int | None) -> np.ndarray:
        try:
            return parse_pixel_field(bytes(field), count)
        except ValueError as exc:
            raise _error(self.path, row, str(exc), "each image is one field of space-separated integers 0..255") \
                from None

    def check_utf8(self, lines: list[bytes]) -> None:
        for offset, line in enumerate(lines):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _error(
                    self.path,
                    self.row + offset,
                    f"not UTF-8 text (byte {line[exc.start]:#04x} at column {exc.start + 1})",
                    "save the file as UTF-8 (or ASCII)",
                ) from None


def _error(path: Path, row: int, message: str, hint: str | None = None) -> UserError:
    return UserError(f"{path}, line {row + 2}: {message}", hint)


def _longest_line() -> int:
    """The longest line a row can take: one image within the pixel limit, each pixel at most "255 ", and room
    for the other columns; 0 when the limit is lifted."""
    pixels = IMAGE_PIXELS.value()
    return 4 * pixels + 4096 if pixels else 0


def _too_long(path: Path, line: int, longest: int) -> UserError:
    limit = f"{IMAGE_PIXELS.what} ({IMAGE_PIXELS.show(IMAGE_PIXELS.value())})"
    return UserError(f"{path}, line {line}: longer than {DATA_BYTES.show(longest)} without a line break, more than "
                     f"a row of one image within {limit} can take: this is not a pixel CSV",
                     f"check the file; if its images really are that large, raise {IMAGE_PIXELS.variable}")


def count_tokens(field: bytes) -> int:
    """How many whitespace-separated tokens ``field`` holds (as ``len(field.split())``), without making them."""
    text = np.frombuffer(field, np.uint8)
    space = (text == 32) | ((text >= 9) & (text <= 13))  # what bytes.split() splits at
    return int(np.count_nonzero(space[:-1] & ~space[1:])) + int(bool(len(text)) and not space[0])


def parse_pixel_field(field: bytes, count: int | None) -> np.ndarray:
    """One image's pixels from whitespace-separated integers; ``ValueError`` says what is wrong and where."""
    if count is not None and (found := count_tokens(field)) != count:  # before splitting a line of any length
        raise ValueError(f"{found} pixel values, expected {count}")
    tokens = field.split()
    for position, token in enumerate(tokens, 1):
        if not token.isdigit():
            raise ValueError(f"pixel {position} is {token.decode(errors='replace')!r}, not an integer")
        if int(token) > 255:
            raise ValueError(f"pixel {position} is {int(token)}, outside 0..255")
    return np.array([int(token) for token in tokens], dtype=np.uint8)


def parse_pixels(fields: Sequence, count: int, out: np.ndarray | None = None) -> np.ndarray | None:
    """(len(fields), count) uint8 when every field (bytes-like) is exactly ``count`` integers 0..255 separated
    by single spaces; None for anything else, which :func:`parse_pixel_field` then parses or explains row by row.

    ``out``, when given, receives the pixels (and is returned); it is left untouched when the result is None.
    """
    rows = len(fields)
    # Two leading separators, so every token has two bytes before it; "\n" marks the end of each row.
    blob = b"\n".join([b"\n", *fields, b""])
    text = np.frombuffer(blob, np.uint8)
    digit = text >= _ZERO  # digits, and any byte above "9", which the checks on units, tens and hundreds reject
    digits = np.count_nonzero(digit)
    ends = np.flatnonzero(digit[2:-1] > digit[3:])  # token ends, as offsets from text[2]
    tokens = len(ends)
    separators = len(blob) - digits
    # Exactly one separator after each token (no empty fields, doubled or edge spaces) and each separator a
    # space, except the row ends and the two leading "\n".
    if tokens != rows * count or separators != tokens + 2 or np.count_nonzero(text == 32) != tokens - rows:
        return None
    starts = np.cumsum([0] + [len(field) + 1 for field in fields[:-1]])
    if not np.array_equal(np.searchsorted(ends, starts), np.arange(0, tokens, count)):
        return None  # the right total, but some rows have too many values and others too few
    units, tens, hundreds = text[2:].take(ends), text[1:].take(ends), text.take(ends)
    for digit_bytes in (units, tens, hundreds):
        digit_bytes -= _ZERO  # separators wrap around to 208 and above
    has_tens = tens < 10
    has_hundreds = hundreds < 10
    has_hundreds &= has_tens
    if tokens + np.count_nonzero(has_tens) + np.count_nonzero(has_hundreds) != digits or units.max() > 9:
        return None  # a token of four or more digits, or one with a byte above "9"
    tens *= has_tens
    hundreds *= has_hundreds
    value = hundreds.astype(np.uint16)
    value *= 10
    value += tens
    value *= 10
    value += units
    if value.max() > 255:
        return None
    if out is None:
        out = np.empty((rows, count), np.uint8)
    np.copyto(out, value.reshape(rows, count), casting="unsafe")  # unsafe only in name: every value is <= 255
    return out

"""A hostile-upload corpus, generated (never stored): each file small on the wire, built to expand,
loop, lie or confuse. Every generator streams, so building the corpus costs little memory."""

from __future__ import annotations

import io
import zipfile
import zlib

from tests.support.files import docx_bytes, pdf_bytes

MB = 1024 * 1024


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF from numbered objects (1-based), with a correct xref table; object 1 is the catalog."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _deflate_repeated(chunk: bytes, times: int) -> bytes:
    packer = zlib.compressobj(9)
    return b"".join(packer.compress(chunk) for _ in range(times)) + packer.flush()


def _stream(data: bytes, *, filtered: bool = True) -> bytes:
    head = b"<< /Length %d /Filter /FlateDecode >>" % len(data) if filtered else b"<< /Length %d >>" % len(data)
    return head + b"\nstream\n" + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def zip_bomb_docx(inflated_mb: int = 300) -> bytes:
    """A real DOCX whose word/document.xml inflates to `inflated_mb` of spaces."""
    base = zipfile.ZipFile(io.BytesIO(docx_bytes(["A harmless opening paragraph."], [["cell"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for item in base.infolist():
            if item.filename == "word/document.xml":
                with bomb.open("word/document.xml", "w", force_zip64=True) as member:
                    member.write(base.read(item.filename)[:-len(b"</w:document>")])
                    for _ in range(inflated_mb):
                        member.write(b" " * MB)
                    member.write(b"</w:document>")
            else:
                bomb.writestr(item, base.read(item.filename))
    return out.getvalue()


def flate_bomb_pdf(inflated_mb: int = 500) -> bytes:
    """One page whose content stream inflates to `inflated_mb` of text-drawing operators."""
    content = _deflate_repeated(b"BT /F1 12 Tf 72 720 Td (bomb) Tj ET\n" * 29127, inflated_mb)
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>", _FONT,
                 b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                 b"/Contents 5 0 R >>", _stream(content)])


def repeated_stream_pdf(pages: int = 8, chars_mb: int = 8) -> bytes:
    """`pages` pages sharing one stream that draws `chars_mb` million characters of text."""
    content = _deflate_repeated(b"BT /F1 12 Tf 72 720 Td (" + b"w" * (MB - 40) + b") Tj ET\n", chars_mb)
    page_ids = list(range(5, 5 + pages))
    kids = b" ".join(b"%d 0 R" % n for n in page_ids)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
               _FONT, _stream(content)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                b"/Contents 4 0 R >>" for _ in page_ids]
    return _pdf(objects)


def page_tree_bomb_pdf(fan_out: int = 1000) -> bytes:
    """1.4 KB-ish of page tree that claims fan_out² pages: every branch is the same node."""
    same_branch = b" ".join([b"3 0 R"] * fan_out)
    same_page = b" ".join([b"4 0 R"] * fan_out)
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                 b"<< /Type /Pages /Kids [" + same_branch + b"] /Count %d >>" % (fan_out * fan_out),
                 b"<< /Type /Pages /Parent 2 0 R /Kids [" + same_page + b"] /Count %d >>" % fan_out,
                 b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] >>"])


def billion_laughs_docx() -> bytes:
    """A DOCX whose document.xml declares nested entities that would expand to gigabytes."""
    entities = "".join(f'<!ENTITY lol{n} "{"&lol%d;" % (n - 1) * 10}">' for n in range(1, 10))
    xml = ('<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY lol0 "lol">' + entities + ']>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
           '<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>')
    base = zipfile.ZipFile(io.BytesIO(docx_bytes(["x"], [["cell"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as laughs:
        for item in base.infolist():
            data = xml.encode() if item.filename == "word/document.xml" else base.read(item.filename)
            laughs.writestr(item, data)
    return out.getvalue()


def deep_html(depth: int = 60_000) -> bytes:
    return b"<html><body>" + b"<div>" * depth + b"deep text" + b"</div>" * depth + b"</body></html>"


def wide_html(elements: int = 300_000) -> bytes:
    return b"<html><body>" + b"<i>" * elements + b"</body></html>"


def polyglot_pdf_html() -> bytes:
    """Starts as a PDF, is an HTML page after that: read as PDF, and refused as a damaged one."""
    return b"%PDF-1.4\n<html><body><script>alert(1)</script><p>not really a pdf</p></body></html>\n"


def mixed_encoding_text() -> bytes:
    return "Tide tables for the estuary, cleaned up.\n".encode() + b"\xff\xfe broken \xc3\x28 bytes \xa0\n" * 20


def png_bytes() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


def pdf_named_docx() -> tuple[str, bytes]:
    return "report.docx", pdf_bytes(["really a pdf"])


def many_members_docx(members: int = 15_000) -> bytes:
    """A ZIP with word/document.xml and `members` empty parts, written by hand so it is made in a
    blink (1.3 MB for 15,000): a central directory far longer than any Word document's."""
    import struct
    import zlib

    names = [b"word/document.xml", *(b"p%d" % n for n in range(members))]
    body = b"<w:document/>"
    local, central, offset = [], [], 0
    for name in names:
        content = body if name == names[0] else b""
        crc = zlib.crc32(content)
        header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(content), len(content),
                             len(name), 0) + name + content
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(content),
                                   len(content), len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(len(names), 0xFFFF), min(len(names), 0xFFFF),
                      len(directory), offset, 0)
    return b"".join(local) + directory + end

#!/usr/bin/env python3
"""Writes a benchmark corpus of N distinct MIDI files made from real ones.

Each source file (the sorted *.mid files under --source) yields variants that
are transposed by -5..+6 semitones and time-stretched by rewriting every tempo
event (x0.80 .. x1.25), so every copy has other bytes and other tokens:
    <out>/v<variant>/<source stem>.mid
The events are walked once per source (running status, meta and sysex
lengths) to find note pitches and tempos; variants then patch those bytes.
A benchmark helper only (standard library, no mido): kmidi never runs it.

    make_scale_corpus.py --source ../shared/data/pop909/POP909 --out /tmp/c --files 100000
"""
import argparse
import os
import sys

TRANSPOSE = list(range(-5, 7))  # 12 shifts, 0 included
STRETCH = [1.0, 0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2, 1.25]


def read_vlq(b, i):
    value = 0
    while True:
        byte = b[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i


def scan(b):
    """Offsets of note pitch bytes (not channel 10) and of 3-byte tempo values."""
    if b[:4] != b"MThd":
        raise ValueError("not a standard MIDI file")
    pos = 8 + int.from_bytes(b[4:8], "big")
    notes, tempos = [], []
    while pos + 8 <= len(b):
        size = int.from_bytes(b[pos + 4:pos + 8], "big")
        start, end = pos + 8, min(len(b), pos + 8 + size)
        if b[pos:pos + 4] == b"MTrk":
            i, status = start, 0
            while i < end:
                _, i = read_vlq(b, i)
                if b[i] >= 0x80:
                    status = b[i]
                    i += 1
                if status == 0xFF:
                    kind = b[i]
                    length, j = read_vlq(b, i + 1)
                    if kind == 0x51 and length == 3:
                        tempos.append(j)
                    i = j + length
                    status = 0
                elif status in (0xF0, 0xF7):
                    length, i = read_vlq(b, i)
                    i += length
                    status = 0
                else:
                    high = status & 0xF0
                    if high in (0x80, 0x90, 0xA0) and (status & 0x0F) != 9:
                        notes.append(i)
                    i += 1 if high in (0xC0, 0xD0) else 2
        pos = start + size
    return notes, tempos


def variant(b, notes, tempos, shift, stretch):
    out = bytearray(b)
    if shift:
        for i in notes:
            out[i] = min(127, max(0, out[i] + shift))
    if stretch != 1.0:
        for i in tempos:
            t = int(int.from_bytes(out[i:i + 3], "big") * stretch)
            out[i:i + 3] = max(1, min(0xFFFFFF, t)).to_bytes(3, "big")
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True, help="folder of real MIDI files (searched recursively)")
    ap.add_argument("--out", required=True, help="corpus folder to write (created)")
    ap.add_argument("--files", type=int, required=True, help="how many files to write")
    args = ap.parse_args()
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.source) for f in fs if f.lower().endswith(".mid"))
    if not paths:
        sys.exit(f"make_scale_corpus.py: no .mid files under {args.source}")
    variants = len(TRANSPOSE) * len(STRETCH)
    if args.files > variants * len(paths):
        sys.exit(f"make_scale_corpus.py: --files {args.files} exceeds {variants} variants x {len(paths)} sources")
    sources = []
    for p in paths:
        b = open(p, "rb").read()
        sources.append((os.path.splitext(os.path.basename(p))[0], b, *scan(b)))
    written = 0
    for v in range(variants):
        stretch, shift = STRETCH[v // len(TRANSPOSE)], TRANSPOSE[v % len(TRANSPOSE)]
        folder = os.path.join(args.out, f"v{v:03d}")
        os.makedirs(folder, exist_ok=True)
        for stem, b, notes, tempos in sources:
            if written == args.files:
                return
            with open(os.path.join(folder, stem + ".mid"), "wb") as f:
                f.write(variant(b, notes, tempos, shift, stretch))
            written += 1


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds a small data set archive for kmidi fetch-data's tests (a test peer):
SRC/<top>/{song.mid, labels/label.csv} with seeded pseudo-random bytes, packed
as OUT (zip, stored; or tar.gz) with the folder <top> at its root. Prints the
archive's SHA-256 and size, computed here with hashlib as the reference.

usage: make_archive.py SRC OUT zip|tar.gz TOP PAYLOAD_BYTES
"""
import hashlib
import os
import random
import sys
import tarfile
import zipfile

src, out, kind, top, payload = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rng = random.Random(1234)
files = {
    os.path.join(top, "song.mid"): bytes(rng.getrandbits(8) for _ in range(payload)),
    os.path.join(top, "labels", "label.csv"): b"ID,4Q\nclip_1,1\nclip_2,3\n",
}
for rel, data in files.items():
    os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
    with open(os.path.join(src, rel), "wb") as f:
        f.write(data)
if kind == "zip":
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for rel in sorted(files):
            z.write(os.path.join(src, rel), rel)
elif kind == "tar.gz":
    with tarfile.open(out, "w:gz") as t:
        t.add(os.path.join(src, top), top)
else:
    sys.exit("unknown kind " + kind)
with open(out, "rb") as f:
    data = f.read()
print(hashlib.sha256(data).hexdigest(), len(data))

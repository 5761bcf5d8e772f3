#!/usr/bin/env python3
"""Compares the checkpoints and ONNX files of two runs of the same job made by
two kmidi builds (e.g. before and after a refactor).

  scripts/compare_run_outputs.py OLD_DIR NEW_DIR

Every *.ckpt and *.onnx under OLD_DIR must exist under NEW_DIR at the same
relative path. Checkpoint sections must be byte-identical, except that
meta.json may differ in the fields that record when, how fast and from which
commit a run was made (created_unix, elapsed_seconds, health, git_commit).
ONNX files must be byte-identical once the old build's git commit (read from
the old checkpoint) is replaced by the new one. Exit 0 when all match, 1 when
not (each difference is printed), 2 on bad arguments.
"""
import json
import pathlib
import struct
import sys

VOLATILE_META = ("created_unix", "elapsed_seconds", "health", "git_commit")


def checkpoint_sections(path):
    data = path.read_bytes()
    if data[:8] != b"KMIDICKP":
        raise SystemExit(f"{path}: not a kmidi checkpoint")
    sections, pos = {}, 12  # magic (8) + format version (4)
    while pos + 4 <= len(data):
        (name_len,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + name_len]
        if name_len > 1024 or pos + 12 + name_len > len(data) or not name.isascii():
            break  # the trailer
        (length,) = struct.unpack_from("<Q", data, pos + 4 + name_len)
        start = pos + 12 + name_len
        if start + length > len(data):
            break
        sections[name.decode()] = data[start:start + length]
        pos = start + length
    return sections


def compare_checkpoint(old, new):
    a, b = checkpoint_sections(old), checkpoint_sections(new)
    problems = [f"section {k} only in one file" for k in sorted(set(a) ^ set(b))]
    for name in sorted(set(a) & set(b)):
        if name == "meta.json":
            ma, mb = json.loads(a[name]), json.loads(b[name])
            for key in sorted(set(ma) | set(mb)):
                if key not in VOLATILE_META and ma.get(key) != mb.get(key):
                    problems.append(f"meta.json {key}: {ma.get(key)!r} != {mb.get(key)!r}")
        elif a[name] != b[name]:
            problems.append(f"section {name} differs")
    commits = (json.loads(a["meta.json"]).get("git_commit", ""), json.loads(b["meta.json"]).get("git_commit", ""))
    return problems, commits


def main(argv):
    if len(argv) != 3 or not all(pathlib.Path(p).is_dir() for p in argv[1:]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    old_dir, new_dir = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    failed, commits = False, None
    checkpoints = sorted(old_dir.rglob("*.ckpt"))
    for old in checkpoints:
        new = new_dir / old.relative_to(old_dir)
        problems, commits = compare_checkpoint(old, new) if new.exists() else ([f"missing {new}"], commits)
        print(f"{old.relative_to(old_dir)}: {'same' if not problems else 'DIFFERENT'}")
        for p in problems:
            print(f"  {p}")
        failed |= bool(problems)
    for old in sorted(old_dir.rglob("*.onnx")):
        new = new_dir / old.relative_to(old_dir)
        a, b = old.read_bytes(), new.read_bytes() if new.exists() else b""
        if commits and commits[0] and len(commits[0]) == len(commits[1]):
            a = a.replace(commits[0].encode(), commits[1].encode())
        same = a == b
        print(f"{old.relative_to(old_dir)}: {'same bytes' if same else 'DIFFERENT'} ({len(b)} bytes)")
        failed |= not same
    if not checkpoints:
        print(f"no checkpoints under {old_dir}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

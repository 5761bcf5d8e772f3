#!/usr/bin/python3
"""mido peer for scripts/bench_midi.sh: parses the same files with mido and
pairs and times the notes with the reference rules (tests/reference/
mido_notes.py), one core, and prints the median of several runs in the same
key=value form as midi_bench.

Usage: bench_midi_mido.py --list FILES.txt [--repeat R]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'reference'))
import mido_notes  # noqa: E402  (the reference's parse + pairing, unchanged)


def run_once(files):
    notes = errors = 0
    start = time.perf_counter()
    for path in files:
        result = mido_notes.parse(path, clip=False)
        if not result['ok']:
            errors += 1
            result = mido_notes.parse(path, clip=True)
            if not result['ok']:
                continue
        notes += len(result['notes'])
    return time.perf_counter() - start, notes, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--list', required=True)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    with open(args.list, encoding='utf-8', errors='surrogateescape') as f:
        files = [line.rstrip('\n') for line in f if line.strip()]
    if not files:
        sys.exit('bench_midi_mido.py: {} lists no files'.format(args.list))
    runs = sorted(run_once(files) for _ in range(args.repeat))
    seconds, notes, errors = runs[len(runs) // 2]
    print('mido threads=1 files={} errors={} notes={} median_s={:.6f} files_per_s={:.1f} notes_per_s={:.0f}'.format(
        len(files), errors, notes, seconds, len(files) / seconds, notes / seconds))


if __name__ == '__main__':
    main()

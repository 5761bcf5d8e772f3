#!/usr/bin/python3
"""Independent mido reference for kmidi's midi_features (datasets/features/MidiFeatures.h).

Reads a PPQ Standard MIDI File with mido, builds the tempo map and the notes by
the rules kmidi's reader documents (datasets/midi/MidiReader.h), then computes
the 32 features of each excerpt [t0, t1) with the formulas of MidiFeatures.h,
written again here from the documentation.

  midi_features_reference.py FILE T0 T1 [T0 T1 ...]
prints {"notes": N, "features": [[32 floats], ...]} as JSON.

Reader rules reproduced: one tempo map from the set_tempo events of all tracks
(sorted by tick, then track, then file order; the last at a tick wins; 120 bpm
before the first); notes paired per (track, channel, pitch), an off (note_off
or note_on velocity 0) closing the earliest open note (FIFO); notes still open
at the end of their track are dropped; a note's program is the last
program_change on its channel in its own track before the note-on (0 if none).
"""
import json
import math
import sys
from collections import defaultdict, deque

import mido


def tempo_map(midi):
    events = []
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for order, msg in enumerate(track):
            tick += msg.time
            if msg.type == "set_tempo":
                events.append((tick, track_index, order, msg.tempo))
    events.sort()
    changes = [(0, 500000)]
    for tick, _, _, tempo in events:
        if changes and changes[-1][0] == tick:
            changes[-1] = (tick, tempo)
        else:
            changes.append((tick, tempo))
    tpq = midi.ticks_per_beat
    # (tick, microseconds per quarter, seconds at tick)
    timed = []
    seconds = 0.0
    for i, (tick, tempo) in enumerate(changes):
        if i > 0:
            prev_tick, prev_tempo = changes[i - 1]
            seconds += (tick - prev_tick) * prev_tempo / 1e6 / tpq
        timed.append((tick, tempo, seconds))
    return timed, tpq


def seconds_at(tick, timed, tpq):
    current = timed[0]
    for change in timed:
        if change[0] <= tick:
            current = change
        else:
            break
    return current[2] + (tick - current[0]) * current[1] / 1e6 / tpq


def read_notes(midi, timed, tpq):
    notes = []  # dict(pitch, velocity, channel, program, track, start, end)
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        program = defaultdict(int)
        open_notes = defaultdict(deque)
        for msg in track:
            tick += msg.time
            if msg.type == "program_change":
                program[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes[(msg.channel, msg.note)].append((tick, msg.velocity, program[msg.channel]))
            elif msg.type in ("note_off", "note_on"):
                queue = open_notes[(msg.channel, msg.note)]
                if queue:
                    start, velocity, prog = queue.popleft()
                    notes.append(dict(pitch=msg.note, velocity=velocity, channel=msg.channel, program=prog,
                                      track=track_index, start=seconds_at(start, timed, tpq),
                                      end=seconds_at(tick, timed, tpq)))
    return notes


def mean_bpm(timed, t0, t1):
    total = 0.0
    for i, (_, tempo, start) in enumerate(timed):
        end = timed[i + 1][2] if i + 1 < len(timed) else t1
        lo, hi = max(start, t0), min(end, t1)
        if hi > lo:
            total += (hi - lo) * 60e6 / tempo
    return total / (t1 - t0)


def pstd(values):
    if not values:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def features(notes, timed, t0, t1):
    span = t1 - t0
    f = [0.0] * 32
    onsets = [n for n in notes if t0 <= n["start"] < t1]
    overlap = lambda n: min(n["end"], t1) - max(n["start"], t0)
    sounding = [n for n in notes if overlap(n) > 0]
    active = {id(n): n for n in onsets + sounding}.values()
    pitched = lambda ns: [n for n in ns if n["channel"] != 9]

    pc = [0.0] * 12
    for n in pitched(sounding):
        pc[n["pitch"] % 12] += overlap(n)
    total = sum(overlap(n) for n in pitched(sounding))
    if total > 0:
        f[0:12] = [v / total for v in pc]
    if onsets:
        f[12] = sum(n["velocity"] / 127.0 for n in onsets) / len(onsets)
        f[17] = sum(1 for n in onsets if n["channel"] == 9) / len(onsets)
    f[13] = min(total / span / 16.0, 1.0)
    f[14] = min(mean_bpm(timed, t0, t1) / 200.0, 2.0)
    f[15] = min(len({(n["track"], n["channel"]) for n in active}) / 8.0, 1.0)
    f[16] = min(len({n["program"] for n in pitched(active)}) / 16.0, 1.0)
    durations = [n["end"] - n["start"] for n in pitched(onsets)]
    if durations:
        f[18] = min(sum(durations) / len(durations) / 5.0, 1.0)
        f[19] = min(pstd(durations) / 5.0, 1.0)
    pitches = [n["pitch"] for n in pitched(active)]
    if pitches:
        f[20] = (max(pitches) - min(pitches)) / 127.0
    # Polyphony at each clipped start (the maximum is reached at some start).
    intervals = [(max(n["start"], t0), min(n["end"], t1)) for n in pitched(sounding)]
    peak = 0
    for s, _ in intervals:
        peak = max(peak, sum(1 for a, b in intervals if a <= s < b))
    f[21] = min(peak / 16.0, 1.0)
    f[22] = min(len(onsets) / span / 10.0, 1.0)
    distinct = []
    for t in sorted(n["start"] for n in onsets):
        if not distinct or t - distinct[-1] >= 1e-6:
            distinct.append(t)
    gaps = [b - a for a, b in zip(distinct, distinct[1:])]
    if len(gaps) >= 2:
        f[23] = min(pstd(gaps), 1.0)
    return f


def main():
    path = sys.argv[1]
    bounds = [float(v) for v in sys.argv[2:]]
    midi = mido.MidiFile(path)
    timed, tpq = tempo_map(midi)
    notes = read_notes(midi, timed, tpq)
    result = [features(notes, timed, bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
    print(json.dumps({"notes": len(notes), "features": result}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Independent reference for kmidi's drum grid (datasets/groove/DrumGrid.h).

Reads a MIDI file with mido, times every message from the file's tempo map,
pairs nothing (only drum onsets matter), snaps each mapped drum note-on on
channel 10 to the nearest 16th note and prints one JSON line per kept hit:
step, class, offset_steps, offset_ms, velocity. The loudest of several hits of
one class in one step wins (the earliest on a tie).

Usage: groove_grid.py FILE.mid
"""
import json
import sys

import mido

# General MIDI percussion in nine classes (kick, snare, closed hi-hat, open
# hi-hat, low, mid and high tom, crash, ride), as the Groove MIDI Dataset's
# humanize experiments group them.
CLASSES = [
    {35, 36},
    {27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85},
    {22, 42, 44, 54, 68, 69, 70, 71, 73, 78, 80},
    {26, 46, 67, 72, 74, 79, 81},
    {29, 41, 43, 45, 61, 64, 84},
    {47, 48, 60, 63, 77, 86, 87},
    {30, 50, 62, 76, 83},
    {49, 52, 55, 57, 58},
    {51, 53, 59, 82},
]
CLASS_OF = {p: c for c, pitches in enumerate(CLASSES) for p in pitches}


def main(path):
    mid = mido.MidiFile(path)
    tpq = mid.ticks_per_beat
    events = []  # (tick, order, message)
    order = 0
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            events.append((tick, order, msg))
            order += 1
    events.sort(key=lambda e: (e[0], e[1]))
    tempo_points = [(0, 0.0, 500000)]  # tick, seconds, us per quarter
    for tick, _, msg in events:
        if msg.type == "set_tempo":
            t0, s0, us = tempo_points[-1]
            seconds = s0 + (tick - t0) * us / 1e6 / tpq
            if tick == t0:
                tempo_points[-1] = (tick, s0, msg.tempo)
            else:
                tempo_points.append((tick, seconds, msg.tempo))

    def seconds_at(tick):
        point = tempo_points[0]
        for p in tempo_points:
            if p[0] <= tick:
                point = p
        return point[1] + (tick - point[0]) * point[2] / 1e6 / tpq

    best = {}
    for tick, _, msg in events:
        if msg.type != "note_on" or msg.velocity == 0 or msg.channel != 9:
            continue
        cls = CLASS_OF.get(msg.note)
        if cls is None:
            continue
        position = tick * 4.0 / tpq
        step = int(round(position)) if abs(position - round(position)) != 0.5 else int(position + 0.5)
        grid_tick = step * tpq // 4
        hit = {
            "step": step,
            "class": cls,
            "offset_steps": position - step,
            "offset_ms": (seconds_at(tick) - seconds_at(grid_tick)) * 1000.0,
            "velocity": msg.velocity,
        }
        key = (step, cls)
        if key not in best or hit["velocity"] > best[key]["velocity"]:
            best[key] = hit
    for key in sorted(best):
        print(json.dumps(best[key]))


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/python3
"""Independent reference for kmidi's MIDI reader, built on Debian's python3-mido.

mido parses the bytes; this script builds the tempo map and pairs the notes
itself, with the rules kmidi documents in datasets/midi/MidiReader.h:

- formats 0 and 1: ONE tempo map from the set_tempo events of ALL tracks,
  merged by tick (ties: track order, then file order; the last event at a
  tick wins), 120 bpm from tick 0 until the first change;
  SMPTE divisions: seconds = ticks / (fps * ticks_per_frame), 29 fps = 29.97;
- per (track, channel, pitch) a note_off or a note_on with velocity 0 closes
  the EARLIEST open note (FIFO); zero-length notes kept; a note-off with
  nothing open ignored; notes open at the end of their track dropped;
- a note's program: the last program_change on its channel in its track
  before the note-on (0 when none);
- notes sorted by (start_tick, track, channel, pitch), ties in file order.

Usage: mido_notes.py ROOT [--files-from LIST]
Writes one JSON line per MIDI file (.mid .midi .kar, any case) under ROOT,
sorted by path relative to ROOT:
  {"file": REL, "strict": RESULT, "clip": RESULT}
"strict" is mido's default parse; "clip" (mido's clip=True, which clamps
data bytes > 127) is present only when the strict parse failed.
RESULT is {"ok": false, "error": TEXT} or {"ok": true, "format", "end_tick",
"tempos": [[tick, us_per_quarter], ...], "unmatched", "unclosed",
"zero_length", "notes": [[pitch, velocity, channel, program, track,
start_tick, end_tick, start_s, end_s], ...]}.
"""

import bisect
import collections
import json
import os
import sys

import mido

DEFAULT_TEMPO = 500000
MIDI_EXTENSIONS = ('.mid', '.midi', '.kar')


def list_midi_files(root):
    found = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.lower().endswith(MIDI_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found, key=lambda p: p.encode('utf-8', 'surrogateescape'))


class TempoMap:
    def __init__(self, tempo_events, ticks_per_beat):
        self.smpte = ticks_per_beat < 0
        if self.smpte:
            raw = ticks_per_beat & 0xFFFF
            fps = 256 - (raw >> 8)
            ticks_per_frame = raw & 0xFF
            self.ticks_per_second = (29.97 if fps == 29 else float(fps)) * ticks_per_frame
        self.ticks_per_beat = ticks_per_beat
        # tempo_events: (tick, track, order, tempo); sorting gives the merged order.
        last_at_tick = collections.OrderedDict()
        for tick, _track, _order, tempo in sorted(tempo_events):
            last_at_tick[tick] = tempo
        changes = sorted(last_at_tick.items())
        if not changes or changes[0][0] > 0:
            changes.insert(0, (0, DEFAULT_TEMPO))
        self.ticks = [t for t, _ in changes]
        self.tempos = [u for _, u in changes]
        self.seconds = [0.0]
        for i in range(1, len(changes)):
            span = self.ticks[i] - self.ticks[i - 1]
            self.seconds.append(self.seconds[-1] + span * self._per_tick(self.tempos[i - 1]))

    def _per_tick(self, tempo):
        return tempo / (1e6 * self.ticks_per_beat)

    def seconds_at(self, tick):
        if self.smpte:
            return tick / self.ticks_per_second
        i = max(bisect.bisect_right(self.ticks, tick) - 1, 0)
        return self.seconds[i] + (tick - self.ticks[i]) * self._per_tick(self.tempos[i])

    def as_list(self):
        return [[t, u] for t, u in zip(self.ticks, self.tempos)]


def notes_of(midi_file):
    tempo_events = []
    notes = []  # [pitch, velocity, channel, program, track, start, end, seq]
    unmatched = unclosed = zero_length = 0
    end_tick = 0
    seq = 0
    for track_index, track in enumerate(midi_file.tracks):
        tick = 0
        program = [0] * 16
        open_notes = collections.defaultdict(collections.deque)
        for order, msg in enumerate(track):
            tick += msg.time
            if msg.type == 'set_tempo':
                tempo_events.append((tick, track_index, order, msg.tempo))
            elif msg.type == 'program_change':
                program[msg.channel] = msg.program
            elif msg.type == 'note_on' and msg.velocity > 0:
                note = [msg.note, msg.velocity, msg.channel, program[msg.channel], track_index, tick, None, seq]
                seq += 1
                notes.append(note)
                open_notes[(msg.channel, msg.note)].append(note)
            elif msg.type in ('note_on', 'note_off'):
                queue = open_notes[(msg.channel, msg.note)]
                if not queue:
                    unmatched += 1
                    continue
                note = queue.popleft()
                note[6] = tick
                if note[6] == note[5]:
                    zero_length += 1
        end_tick = max(end_tick, tick)
        still_open = sum(len(q) for q in open_notes.values())
        unclosed += still_open
        if still_open:
            notes = [n for n in notes if n[6] is not None]
    tempo_map = TempoMap(tempo_events, midi_file.ticks_per_beat)
    notes.sort(key=lambda n: (n[5], n[4], n[2], n[0], n[7]))
    rows = [n[:7] + [tempo_map.seconds_at(n[5]), tempo_map.seconds_at(n[6])] for n in notes]
    return {
        'ok': True,
        'format': midi_file.type,
        'end_tick': end_tick,
        'tempos': tempo_map.as_list(),
        'unmatched': unmatched,
        'unclosed': unclosed,
        'zero_length': zero_length,
        'notes': rows,
    }


def parse(path, clip):
    try:
        midi_file = mido.MidiFile(path, clip=clip)
    except Exception as error:  # mido raises OSError, EOFError, ValueError, KeyError, ...
        return {'ok': False, 'error': '{}: {}'.format(type(error).__name__, error)}
    return notes_of(midi_file)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    root = argv[1]
    if not os.path.isdir(root):
        sys.stderr.write('mido_notes.py: {} is not a folder\n'.format(root))
        return 2
    out = sys.stdout
    for rel in list_midi_files(root):
        path = os.path.join(root, rel)
        record = {'file': rel, 'strict': parse(path, clip=False)}
        if not record['strict']['ok']:
            record['clip'] = parse(path, clip=True)
        out.write(json.dumps(record, separators=(',', ':'), ensure_ascii=True))
        out.write('\n')
    out.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))

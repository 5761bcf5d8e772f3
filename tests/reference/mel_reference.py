#!/usr/bin/python3
"""Independent NumPy log-mel spectrogram: the reference for kmidi's MelSpectrogram.

Implements the definition in datasets/audio/MelSpectrogram.h from scratch in
float64 with NumPy only (librosa is not a dependency): centred framing with
reflect or constant padding, periodic Hann window, rfft, |X|^power, a Slaney
or HTK mel filterbank (librosa's formulas), power to dB with ref, amin and
top_db, then optional per-clip standardisation.

Input: raw little-endian float32 mono samples. Output, for PREFIX:
  PREFIX.fb.f64   filterbank [n_mels, n_fft//2+1]
  PREFIX.mel.f64  mel spectrogram before dB [n_mels, frames]
  PREFIX.db.f64   after dB (and top_db) [n_mels, frames]
  PREFIX.out.f64  final output (after normalisation) [n_mels, frames]
all raw little-endian float64, row-major. Prints {"n_mels": .., "frames": ..} as JSON.
"""
import argparse
import json

import numpy as np


def hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / (200.0 / 3.0)
    logstep = np.log(6.4) / 27.0
    log_part = 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) / logstep
    return np.where(f >= 1000.0, log_part, linear)


def mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3.0))


def filterbank(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm):
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    weights = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        weights[i] = np.maximum(0.0, np.minimum(rise, fall))
        if slaney_norm:
            weights[i] *= 2.0 / (hi - lo)
    return weights


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output-prefix", required=True)
    p.add_argument("--sample-rate", type=int, required=True)
    p.add_argument("--n-fft", type=int, default=2048)
    p.add_argument("--hop-length", type=int, default=512)
    p.add_argument("--win-length", type=int, default=0)
    p.add_argument("--center", type=int, default=1)
    p.add_argument("--pad-mode", default="reflect", choices=["reflect", "constant"])
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--fmin", type=float, default=0.0)
    p.add_argument("--fmax", type=float, default=0.0)
    p.add_argument("--power", type=float, default=2.0)
    p.add_argument("--mel-scale", default="slaney", choices=["slaney", "htk"])
    p.add_argument("--mel-norm", default="slaney", choices=["slaney", "none"])
    p.add_argument("--to-db", type=int, default=1)
    p.add_argument("--db-ref", default="max", choices=["max", "one"])
    p.add_argument("--amin", type=float, default=1e-10)
    p.add_argument("--top-db", type=float, default=80.0)
    p.add_argument("--normalization", default="standardize", choices=["none", "standardize"])
    a = p.parse_args()

    x = np.fromfile(a.input, dtype="<f4").astype(np.float64)
    n_fft, hop = a.n_fft, a.hop_length
    win = a.win_length or n_fft
    fmax = a.fmax or a.sample_rate / 2.0

    if a.center:
        x = np.pad(x, n_fft // 2, mode=a.pad_mode)
    frames = 1 + (x.size - n_fft) // hop
    n = np.arange(win, dtype=np.float64)
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset:offset + win] = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win)

    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.fft.rfft(x[idx] * window[None, :], axis=1).T  # [F, T]
    power = np.abs(spectrum) ** a.power

    fb = filterbank(a.sample_rate, n_fft, a.n_mels, a.fmin, fmax, a.mel_scale == "htk", a.mel_norm == "slaney")
    mel = fb @ power

    out = mel
    db = mel
    if a.to_db:
        scale = 20.0 / a.power
        ref = mel.max() if a.db_ref == "max" else 1.0
        db = scale * np.log10(np.maximum(a.amin, mel)) - scale * np.log10(max(a.amin, ref))
        if a.top_db > 0:
            db = np.maximum(db, db.max() - a.top_db)
        out = db
    if a.normalization == "standardize":
        out = (out - out.mean()) / max(out.std(), 1e-6)

    for name, arr in (("fb", fb), ("mel", mel), ("db", db), ("out", out)):
        np.ascontiguousarray(arr, dtype="<f8").tofile(a.output_prefix + "." + name + ".f64")
    print(json.dumps({"n_mels": int(a.n_mels), "frames": int(frames)}))


if __name__ == "__main__":
    main()

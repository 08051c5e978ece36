"""Helpers for tests of a study's participants: the steps before phase I (a headphone
check answered from the audio itself, the practice loop), through the HTTP API."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

TONE_S, GAP_S = 1.0, 0.5  # a headphone trial: tone, gap, tone, gap, tone


def tones_of(wav: bytes):
    """A trial's WAV as its three tones: float64[3, samples, 2], and the rate."""
    audio, sr = sf.read(io.BytesIO(wav))
    n, gap = round(TONE_S * sr), round(GAP_S * sr)
    assert audio.shape == (3 * n + 2 * gap, 2)
    return np.stack([audio[i * (n + gap): i * (n + gap) + n] for i in range(3)]), sr


def quietest(wav: bytes) -> int:
    """The 1-based tone that is quietest over headphones: the lowest level per channel
    (an antiphase tone is as loud as the reference in each ear)."""
    tones, _ = tones_of(wav)
    return int(np.argmin(np.sqrt(np.mean(tones ** 2, axis=(1, 2))))) + 1


def headphone_check(client, sid, right=6):
    """Answers one attempt's six trials, ``right`` of them correctly."""
    for trial in range(1, 7):
        correct = quietest(client.get(f"/api/s/{sid}/headphones/{trial}.wav").content)
        answer = correct if trial <= right else correct % 3 + 1
        response = client.post(f"/api/s/{sid}/headphones",
                               json={"trial": trial, "answer": answer})
        assert response.status_code == 200, response.text


def join(client, sid):
    """Joins the study as ``sid`` (``/api/join``, or the older ``/api/participants``)."""
    response = client.post("/api/join", json={"id": sid})
    if response.status_code in (404, 405):
        response = client.post("/api/participants", json={"id": sid})
    assert response.status_code == 200, response.text
    return response.json()


def past_the_steps(client, sid, *, consent=False):
    """Takes the joined participant ``sid`` through the steps before phase I: the consent
    (where the study has one), a passed headphone check and the practice loop."""
    if consent:
        assert client.post(f"/api/s/{sid}/consent", json={"agree": True}).status_code == 200
    headphone_check(client, sid)
    assert client.get(f"/api/s/{sid}/current").json()["phase"] == "practice"
    assert client.post(f"/api/s/{sid}/practice", json={"liked": True}).status_code == 200


def through_steps(client, sid, *, consent=False):
    """Joins ``sid`` and goes through the steps before phase I."""
    join(client, sid)
    past_the_steps(client, sid, consent=consent)

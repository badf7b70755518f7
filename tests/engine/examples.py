"""Definitions shared by the engine tests: the design's example funnel, as written."""

from __future__ import annotations

EXAMPLE = """\
key: b2b-nurture
name: From eBook to demo
topic: nurture
entry: {on: ebook_downloaded, where: {ebook: seven-fundamentals}}
exit:  {on: form_submitted, where: {form: contact-us}, as: converted}
caps: [{max: 1, per: 1d}, {max: 3, per: 7d}]
send_window: {days: mon-fri, from: "09:00", to: "17:00", timezone: contact}
stages:
  - key: read_ebook
    emails:
      - {template: ebook-welcome, after: 0m}
      - {template: video1-invite, after: 2d}
    transitions:
      - {on: video_watched, where: {video: explainer-1, percent: {gte: 50}}, to: watched_video1}
      - {after: 14d, to: dormant}
  - key: watched_video1
    emails: [{template: quiz-invite, after: 1h}]
    transitions: [{on: quiz_taken, to: took_quiz}]
  - key: took_quiz
    transitions: [{after: 30d, to: dormant}]
  - key: dormant
    emails: [{template: dormant-nudge, after: 0m}]
"""

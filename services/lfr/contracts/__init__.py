"""Contracts for downstream subscribers, generated from ``proto/`` and the topic catalogue.

``lfr contracts generate`` writes the AsyncAPI 3.0 document of every topic and the JSON Schemas of the JSON
mirror topics and webhook payloads into docs/subscribers/; a unit test fails when those files are stale.
"""

"""Evidence redaction: cover every face but the ones that matter in footage and stills for disclosure.

Modules, one job each: ``tracks`` (faces joined across detected frames), ``schedule`` (which frames get
detection), ``plan`` (the box to cover on every frame: interpolation, margin, hold), ``masks`` (styles),
``media`` (PyAV decode, H.264 MP4 encode, audio carried over), ``engine`` (the two passes), ``keep`` (what
stays visible), ``preview`` and ``report`` (what the officer sees and files), ``service`` (refusal,
audit, the whole job), ``cli`` and ``bench``. docs/redaction.md states the guarantees and limits.
"""

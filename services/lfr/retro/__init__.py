"""Retrospective search: stills and video files against watchlists or custody galleries, for a recorded case.

Entry points: :func:`lfr.retro.search.retrospective_search` (one search with its own connections),
:class:`lfr.retro.search.RetroSearcher` (servers), :class:`lfr.retro.gallery.Gallery` and
:func:`lfr.retro.gallery.import_folder` (custody galleries), and the CLI in :mod:`lfr.retro.cli`.
"""

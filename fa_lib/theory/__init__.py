"""The theory layer: the papers' mathematics as pure functions of tensors.

One module per paper, plus what they share, and :mod:`.song_tables`, Song et al.'s published alignment tables. No module here runs training, plots, records results
or imports a chapter; each function's docstring names the section of ``shared/papers/<paper>.md``
that it implements, and states the shapes it takes and returns.
"""

from . import conservation, fixed_points, song, song_tables

__all__ = ["conservation", "fixed_points", "song", "song_tables"]

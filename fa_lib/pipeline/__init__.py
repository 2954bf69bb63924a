"""The pipeline wing: runs the chapters and builds the book; nothing a chapter imports.

* :mod:`~fa_lib.pipeline.reproduce`: ``make reproduce`` (papermill runs, cache, book build);
* :mod:`~fa_lib.pipeline.pages`: the generated pages (scorecard, performance, contents);
* :mod:`~fa_lib.pipeline.project`: where the pipeline reads and writes (used by both of the above);
* :mod:`~fa_lib.pipeline.bench`: ``make bench``, speed as ratios measured in one run.

Its files are not part of a chapter's cache key (:func:`~fa_lib.pipeline.reproduce.inputs_key`).
"""

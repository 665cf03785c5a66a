"""The book: pages and tables generated from runs, and what builds and launches them.

``pages`` (results pages, the claims table), ``real_data`` (the real-data chapter),
``launch`` (``pcm book``: launch buttons and the Sphinx extension) and ``exercises``
(student copies of the notebooks).
"""

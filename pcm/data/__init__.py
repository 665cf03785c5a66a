"""Data: the CBRAIN file layout, normalisation, splits as arrays, and the synthetic aquaplanet.

- :mod:`pcm.data.cbrain` — reading and writing the CBRAIN layout (``vars(sample, var_names)``);
- :mod:`pcm.data.normalization` — the statistics of a norm file and (de)normalisation;
- :mod:`pcm.data.checks` — validating a data file against the catalogue and a norm file;
- :mod:`pcm.data.datasets` — one split as normalised arrays, the synthetic data set on disk;
- :mod:`pcm.data.synthetic` — the SPCAM-like aquaplanet whose true drivers are known.
"""

"""The book: generated pages and tables, the real-data chapter, the launch buttons and Sphinx extension, student copies of the notebooks."""

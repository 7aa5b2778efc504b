"""Getting files into the index: scanning, parsing, chunking, the pipeline, watching."""

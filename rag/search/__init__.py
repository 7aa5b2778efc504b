"""Finding passages: dense, lexical and fused retrieval."""

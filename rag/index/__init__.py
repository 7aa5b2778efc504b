"""The index: the SQLite catalog, the vector store, the embedding model and the writer lock."""

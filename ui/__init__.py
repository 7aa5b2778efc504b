"""Archivist's faces: the `archivist` command line and the Streamlit page."""

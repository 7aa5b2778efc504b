"""The tools research mode gives the model: the library (search, open, find; rag/tools/library.py) and a
calculator that runs model-written Python in a sandbox (rag/tools/calculator.py is the interface,
rag/tools/sandbox.py the WASI implementation)."""

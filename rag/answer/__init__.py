"""Answering: the prompt, follow-ups, citations, grounding and support of each sentence."""

"""The language model clients: the chat interface, Ollama, OpenAI-compatible servers, harmony."""

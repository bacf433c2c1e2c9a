"""Clients of the outside services the product talks to: an OpenAI-compatible LLM server, an
embeddings server, Pinecone. They raise core's TransientError / PermanentError and import no app."""

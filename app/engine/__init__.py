"""The engine: generating outputs and decoding fills, and the object storage they go through."""

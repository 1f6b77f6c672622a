"""The built-in demo target: rendered pages, a tiny DeepSeek-OCR-2 and the DeepSeek-OCR v1 stand-in."""

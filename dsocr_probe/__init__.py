"""dsocr-probe: will this LoRA fine-tuning run of DeepSeek-OCR start, fit and learn?"""

__version__ = "0.1.0"

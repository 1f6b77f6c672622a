"""dsocr-probe: will this LoRA fine-tuning run of DeepSeek-OCR start, fit and learn?

The batch builders the probes verify are importable from here::

    from dsocr_probe import DeepseekOCRCollator, DeepseekOCR2Collator, ProcessorCollator

or, for any family, the one the probes would verify: ``dsocr_probe.builder_for(model_path)``.
"""

__version__ = "0.1.0"

_BUILDERS = {
    "DeepseekOCRCollator": "deepseek_ocr_v1",
    "DeepseekOCR2Collator": "deepseek_ocr2",
    "ProcessorCollator": "processor",
    "SuffixCollator": "suffix",
    "Seq2SeqCollator": "seq2seq",
    "BatchBuilder": "base",
    "BadExample": "base",
    "builder_for": "builders",
}
__all__ = sorted(_BUILDERS)


def __getattr__(name: str):
    # Imported on first use: pytest loads this package in every session through its entry point,
    # and the builders pull in torch and transformers.
    if name in _BUILDERS:
        import importlib

        return getattr(importlib.import_module(f".collators.{_BUILDERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

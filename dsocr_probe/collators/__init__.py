from .deepseek_ocr_v1 import DeepseekOCRCollator  # noqa: F401
from .deepseek_ocr2 import DeepseekOCR2Collator  # noqa: F401
from .processor import ProcessorCollator  # noqa: F401
from .suffix import SuffixCollator  # noqa: F401
from .seq2seq import Seq2SeqCollator  # noqa: F401

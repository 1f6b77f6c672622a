from .deepseek_ocr_v1 import DeepseekOCRCollator
from .deepseek_ocr2 import DeepseekOCR2Collator
from .processor import ProcessorCollator
from .suffix import SuffixCollator
from .seq2seq import Seq2SeqCollator

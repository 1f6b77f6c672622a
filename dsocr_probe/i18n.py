"""Translations of finding texts, keyed by the finding's code and formatted with its params.

Probes write English. A code missing here is shown in English, so a new finding never
disappears from a Russian report; it is only untranslated until it is added.
"""

from __future__ import annotations

from typing import Any

from .findings import Finding

RU: dict[str, dict[str, str]] = {
    "environment.peft-needs-modeling-layers": {
        "title": "peft {peft} не импортируется с transformers {transformers}",
        "detail": "peft 0.18.0 при импорте обращается к `transformers.modeling_layers`, который появился только в "
        "transformers 4.52.1: `import peft` падает с `No module named 'transformers.modeling_layers'`.",
        "fix": "Для DeepSeek-OCR v1 (нужен transformers <= 4.47.1): `pip install 'peft==0.17.1'`. "
        "Иначе `pip install 'transformers>=4.52.1'`.",
    },
    "environment.peft-torch-distributed-tensor": {
        "title": "peft {peft} + transformers {transformers} + torch {torch}: get_peft_model падает",
        "fix": "`pip install 'peft==0.17.1'` (стек DeepSeek-OCR v1: transformers 4.46.3 + peft 0.17.1).",
    },
    "environment.requirement-conflict": {
        "title": "{dist} требует {requirement}, а установлен {have}",
    },
    "cuda.no-kernels": {
        "title": "В этой сборке torch (CUDA {torch_cuda}) нет ядер для {device} ({sm})",
        "fix": "Установите {build}: `pip install --force-reinstall torch torchvision --index-url "
        "https://download.pytorch.org/whl/cu128` (на Windows в PyPI torch только для CPU).",
    },
    "target.not-cached": {
        "title": "`{model}` нет в локальном кэше Hugging Face",
        "fix": "Проверки ничего не скачивают. Скачайте один раз: `huggingface-cli download {model}`, "
        "или передайте локальную папку через --dsocr-model.",
    },
    "train_config.renamed-argument": {
        "title": "TrainingArguments не принимает аргумент `{key}`",
        "fix": "Используйте `{use}` вместо `{key}`.",
    },
    "train_config.unknown-argument": {
        "title": "TrainingArguments не принимает аргумент `{key}`",
        "fix": "Возможно, имелось в виду `{suggestion}`?",
    },
    "train_config.trainer-argument": {
        "title": "`{key}` — аргумент Trainer, а не TrainingArguments",
    },
    "train_config.auto-class": {
        "title": "model.auto_class {auto_class} не загружает этот чекпойнт",
        "fix": "Укажите `model.auto_class: {use}` и загружайте через `{use}.from_pretrained`.",
    },
    "train_config.batch-larger-than-data": {
        "title": "per_device_train_batch_size {bs} больше числа обучающих примеров ({n})",
        "fix": "Поставьте `per_device_train_batch_size: {n}` или меньше, либо добавьте данных.",
    },
    "train_config.effective-batch": {
        "title": "Эффективный батч {effective} больше датасета ({n} примеров): всего {total} шагов оптимизатора",
        "fix": "При {n} примерах: `per_device_train_batch_size: 1` и `gradient_accumulation_steps: 1`; "
        "сначала растите данные, потом батч.",
    },
    "train_config.epochs": {
        "title": "{epochs} эпох на {n} примерах: модель их просто запомнит",
        "fix": "Обучайте 3-5 эпох и добавьте данных; следите за validation loss (eval_strategy: epoch).",
    },
    "train_config.remove-unused-columns": {
        "title": "remove_unused_columns не равен False: Trainer выбросит image и text до коллатора",
        "fix": "Поставьте `remove_unused_columns: false` в секции training.",
    },
    "train_config.collator-pickle": {
        "title": "{workers} воркера DataLoader при spawn требуют сериализуемый коллатор: {problem}",
        "fix": "Используйте коллатор верхнего уровня, например `dsocr_probe.DeepseekOCRCollator`, не храните в нём "
        "модель и процессор, или поставьте `dataloader_num_workers: 0`.",
    },
    "train_config.task-type": {
        "title": "LoRA task_type {task} для этой архитектуры не подходит",
        "fix": "Поставьте `lora.task_type: {want}` (TaskType.{want}).",
    },
    "batch.unknown-key": {
        "title": "В батче есть `{key}`, которого нет в forward()",
        "fix": "Отдавайте `{near}` вместо `{key}`.",
    },
    "processor.tokenizer-only": {
        "title": "AutoProcessor возвращает только токенизатор ({kind}): изображения он не принимает",
        "fix": "Не передавайте изображения в процессор. Используйте проверенный сборщик батчей: "
        "`from dsocr_probe import DeepseekOCRCollator; collator = DeepseekOCRCollator(tokenizer, mode='gundam')` "
        "и `Trainer(..., data_collator=collator)`.",
    },
    "dataset.bad-rows": {
        "title": "{n} строк(и) датасета непригодны: обучение остановится на первой из них",
        "fix": "Исправьте или удалите каждую строку из таблицы в её metadata-файле; сборщик батчей их не пропускает молча.",
    },
    "step.task-type": {
        "title": "LoRA task_type {given} для этой модели неверен: нужен {want}",
        "fix": "Поставьте `lora.task_type: {want}` (peft `TaskType.{want}`).",
    },
    "step.loss-falls": {
        "title": "Loss падает на повторяемом батче: {first} → {last} за {steps} шагов",
    },
    "step.out-of-memory": {
        "title": "Не хватило памяти на {device}: {what}",
    },
    "step.forward-fails": {
        "title": "Шаг обучения падает: {error}",
    },
    "dataset.too-long": {
        "title": "{n} целевых текстов длиннее max_length {max_length}",
    },
}


def translate(f: Finding, lang: str) -> dict[str, Any]:
    text = {"title": f.title, "detail": f.detail, "fix": f.fix}
    if lang == "ru" and f.code in RU:
        for key, template in RU[f.code].items():
            try:
                text[key] = template.format(**f.params)
            except (KeyError, IndexError, ValueError):
                pass  # a missing param keeps the English text rather than a broken sentence
    return text

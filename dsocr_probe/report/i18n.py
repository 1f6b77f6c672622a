"""Translations of finding texts, keyed by the finding's code and formatted with its params.

Probes write English. A code missing here is shown in English, so a new finding never
disappears from a Russian report; it is only untranslated until it is added.

An entry maps "title", "detail" and "fix" to a template, or to a tuple of templates tried in
order: the first whose params are all given (and not None) is used, so a finding whose English
text has variants names the variant by which params it carries. If none fits, the English text
stays. Optional keys:

- "status": the statuses the entry applies to, where a code is shared by findings with
  different texts (a pass and a warning of the same probe);
- "terms": a small glossary for values written in English, applied with the ``!t``
  conversion (``{what!t}``).

A finding that stops because of another one carries that one's code and title in
``cause_code`` / ``cause`` (and its params); its templates get ``{cause}``, ``{cause_detail}``
and ``{cause_fix}`` already translated.
"""

from __future__ import annotations

import string
from typing import Any, Mapping, Union

from ..findings import Finding

Template = Union[str, tuple[str, ...]]
KEYS = ("title", "detail", "fix")

# Shared wordings.
_FIX_MEMORY = (
    "включите `gradient_checkpointing: true`, уменьшите `per_device_train_batch_size` (и увеличьте "
    "`gradient_accumulation_steps`, чтобы эффективный батч не изменился) или уменьшите `data.max_length` / "
    "возьмите режим с меньшим числом image-токенов (tiny/small)"
)
_TARGETS_FIX = (
    "Ставьте адаптеры на языковую модель: `target_modules: {targets}` с `exclude_modules: '{exclude}'`.",
    "Ставьте адаптеры на языковую модель: `target_modules: {targets}`.",
)
_VERSION_FIX = (
    "`{v1_stack}` — стек, под который написан remote code DeepSeek-OCR v1.",
    "`pip install 'transformers{spec}'`, например `pip install 'transformers=={saved_in_spec}'` (с этой версией "
    "сохранён config.json), или поправьте импорты в remote code.",
    "`pip install 'transformers{spec}'` или поправьте импорты в remote code.",
    "`pip install 'transformers=={saved}'` (с этой версией сохранён config.json) или поправьте импорты в remote code.",
    "Поставьте релиз transformers, под который написан remote code, или замените его импорты на имена из "
    "установленного релиза.",
)
_ON_IMPORT = "Выполняется сразу, как только from_pretrained импортирует файл: {on_import}."
_TRUST_FIX = ("Прочитайте находки проверки Remote code, затем перезапустите с --dsocr-trust-remote-code "
              "--dsocr-revision <commit>.")
_UNPINNED_RISK = ("Без проверенного закрепления следующая загрузка или правка может принести другой код, и он "
                  "выполнится с вашими правами (папка модели: {path}). sha256 каждого проверенного файла — в evidence.")
_FORECAST = "Прогноз для батча {batch} x {length} токенов"


def _hazard(title: str, fix: str, detail: Template = _ON_IMPORT) -> dict[str, Template]:
    """A remote-code hazard: "<what>: `call` at file:line", with the other places counted."""
    return {
        "title": (title + ": `{call}` в {where} (и ещё {more})", title + ": `{call}` в {where}"),
        "detail": detail,
        "fix": (fix + " Остальные места ({more}) — в таблице.", fix),
    }


def _timeout() -> dict[str, Template]:
    """A probe under --dsocr-timeout that did not finish (runner.timed_out)."""
    return {
        "title": "Проверка «{title}» не закончилась за {limit:g} с",
        "detail": "Чтение файлов датасета, конфига или модели, импорт кода чекпойнта, загрузка весов или шаг обучения "
        "зависли или идут намного медленнее ожидаемого (сетевой диск, именованный канал, своп, мёртвая GPU, блокировка "
        "другим процессом).",
        "fix": "Поднимите --dsocr-timeout выше {limit:g}, если машина просто медленная; иначе запустите с "
        "`-k {probe} -s` и посмотрите, где остановится.",
    }


def _died() -> dict[str, Template]:
    """A probe under --dsocr-timeout whose process ended without reporting (runner._died)."""
    return {
        "title": "Процесс проверки «{title}» завершился без результата ({how})",
        "detail": "С --dsocr-timeout проверка идёт в отдельном процессе; он закончился раньше, чем сообщил результат: "
        "убит из-за нехватки памяти (SIGKILL от OOM killer ядра), падение в нативном коде (SIGSEGV, SIGABRT) или "
        "код, вызвавший exit().",
        "fix": "Запустите `-k {probe} -s` без --dsocr-timeout, чтобы увидеть падение в этом процессе; проверьте "
        "`dmesg` на OOM killer.",
    }


def _prerequisite() -> dict[str, Template]:
    return {"title": "Не проверено: {cause}", "detail": "{cause_detail}", "fix": "{cause_fix}"}


RU: dict[str, dict[str, Any]] = {
    # ---------------------------------------------------------------- environment
    "environment.missing": {
        "title": "{dist} не установлен",
        "fix": "`pip install {dist}` (для torch — сборку под ваш CUDA-драйвер).",
    },
    "environment.peft-needs-modeling-layers": {
        "title": "peft {peft} не импортируется с transformers {transformers}",
        "detail": "peft 0.18.0 при импорте обращается к `transformers.modeling_layers`, который появился только в "
        "transformers 4.52.1: `import peft` падает с `No module named 'transformers.modeling_layers'`.",
        "fix": "Для DeepSeek-OCR v1 (нужен transformers <= 4.47.1): `pip install 'peft==0.17.1'`. "
        "Иначе `pip install 'transformers>=4.52.1'`.",
    },
    "environment.peft-torch-distributed-tensor": {
        "title": "peft {peft} + transformers {transformers} + torch {torch}: get_peft_model падает",
        "detail": "С этой комбинацией `get_peft_model` падает с `AttributeError: module 'torch.distributed' has no "
        "attribute 'tensor'`; с этими версиями transformers работает peft <= 0.17.1.",
        "fix": "`pip install 'peft==0.17.1'` (стек DeepSeek-OCR v1: transformers 4.46.3 + peft 0.17.1).",
    },
    "environment.peft-too-old-for-transformers-5": {
        "title": "transformers {transformers} не принимает peft {peft}",
        "detail": "transformers 5.x требует peft не ниже 0.18.0 (MIN_PEFT_VERSION): загрузка LoRA и интеграция peft "
        "в Trainer падают на более старом peft.",
        "fix": "`pip install 'peft>=0.18.0'` или оставайтесь на стеке v1 (transformers 4.46.3 + peft 0.17.1).",
    },
    "environment.peft-too-old-for-transformers-5.23": {
        "title": "transformers {transformers} не принимает peft {peft}",
        "detail": "В transformers 5.23 минимальная версия peft (MIN_PEFT_VERSION) поднята до 0.20.0.",
        "fix": "`pip install 'peft>=0.20.0'`.",
    },
    "environment.torch-too-old-for-transformers": {
        "title": "transformers {transformers} не видит torch {torch}: слишком старая версия",
        "detail": "transformers 5.23 требует torch >= 2.6; со старым torch все классы моделей — заглушки, которые "
        "падают при первом использовании.",
        "fix": "Поставьте torch >= 2.6 (в сборке под CUDA вашей GPU) или закрепите `transformers<5.23`.",
    },
    "environment.torchvision-mismatch": {
        "title": "torchvision {torchvision} собран под torch {built_for}, а установлен torch {torch}",
        "detail": "Скомпилированные операторы torchvision загружаются только с тем релизом torch, под который собраны; "
        "remote code DeepSeek-OCR импортирует torchvision.",
        "fix": "`pip install torchvision=={use}` с того же индекса, откуда ставили torch.",
    },
    "environment.requirement-conflict": {
        "title": "{dist} {version} требует {name}{specifier}, а установлен {name} {have}",
        "fix": "`pip install '{name}{specifier}'` (или версию {dist}, которая принимает {name} {have}).",
    },
    # ---------------------------------------------------------------- cuda
    "cuda.no-gpu": {
        "title": (
            "Нет GPU для проверки: torch собран с CUDA {torch_cuda}, но не видит ни одного CUDA-устройства",
            "Нет GPU для проверки: это CPU-сборка torch",
        ),
        "detail": "Проверка шага обучения пойдёт на CPU; её цифры памяти — RSS процесса, а не VRAM.",
        "fix": "Запустите проверку на машине, где будет идти обучение, чтобы проверить её GPU.",
    },
    "cuda.no-kernels": {
        "title": "В этой сборке torch (CUDA {torch_cuda}) нет ядер для {device} ({sm})",
        "detail": "torch.cuda.get_arch_list() = {arch_list}: нет ни cubin для {sm}, ни PTX, из которого его можно "
        "собрать. torch.cuda.is_available() всё равно возвращает True, но любая CUDA-операция падает с "
        "'CUDA error: no kernel image is available for execution on the device'. Предупреждение "
        "'{sm} is not compatible with the current PyTorch installation' — не безобидное.",
        "fix": "Установите {build}: `pip install --force-reinstall torch torchvision --index-url "
        "https://download.pytorch.org/whl/cu128` (на Windows в PyPI torch только для CPU).",
    },
    "cuda.kernel-failed": {
        "title": "CUDA-ядро упало на {device}: {error}",
        "fix": "Переустановите сборку torch под драйвер (версию CUDA драйвера показывает `nvidia-smi`).",
    },
    "cuda.no-bf16": {
        "title": "{device} ({sm}) не поддерживает bf16 (нужна compute capability >= 8.0)",
        "detail": "Веса DeepSeek-OCR — в bf16; в fp16 активации могут переполниться.",
        "fix": "Поставьте `bf16: false` и `fp16: true` в конфиге обучения или загружайте модель в float32.",
    },
    # ---------------------------------------------------------------- remote code
    "remote_code.bad-auto-map": {
        "title": "Не удаётся прочитать auto_map: {error}",
        "fix": "Восстановите файл из чекпойнта; значение auto_map — 'module.Class' (для токенизаторов — пара [slow, fast]).",
    },
    "remote_code.modules": {
        "status": "warn",
        "title": (
            "Для загрузки модели нужен trust_remote_code, а он выполнит код из файлов ({count}): {listed}",
            "Для загрузки модели нужен trust_remote_code, но ни один файл его кода не читается",
        ),
        "detail": "Ничего не импортировалось: файлы прочитаны как текст. Находки ниже — о том, что они сделали бы.",
        "fix": "Просмотрите эти файлы, затем перезапустите с `--dsocr-trust-remote-code --dsocr-revision <pin>`: коммит "
        "чекпойнта (снапшот хаба или чистый git-checkout) или `{digest}` — дайджест этих файлов.",
    },
    "remote_code.missing-module": {
        "title": "Remote code ссылается на файлы, которых нет в чекпойнте: {names}",
        "detail": "Загрузка остановится с ошибкой импорта на первом из них.",
        "fix": "Восстановите {names} из того же коммита чекпойнта (например, `{download} <repo> "
        "{file_args} --revision <commit>`) или уберите ссылку.",
    },
    "remote_code.external-module": {
        "title": "{entry} подгружает код из другого репозитория ({repo}), который не проверялся",
        "fix": "Проверьте тот репозиторий на закреплённом коммите (`--dsocr-model {repo} --dsocr-revision <commit>`) "
        "или скопируйте {file} в этот чекпойнт и пропишите в auto_map `{local_reference}`.",
    },
    "remote_code.unreadable": {
        "title": "{file} не разбирается парсером, поэтому не проверен: {error}",
        "detail": "Импорт упадёт точно так же.",
        "fix": "Восстановите {file} из чекпойнта (файл повреждён или написан под другую версию Python).",
    },
    "remote_code.missing-symbol": {
        "title": "Remote code импортирует имена, которых нет в transformers {transformers}: {short}",
        "detail": (
            "Импорт {file} обрывается на строке {line}: {reason} (окружение воспроизведено: transformers {replayed} "
            "оценён по таблице версий)",
            "Импорт {file} обрывается на строке {line}: {reason}",
        ),
        "fix": _VERSION_FIX,
    },
    "remote_code.optional-symbol": {
        "title": "На необязательных путях remote code импортирует имена, которых нет в transformers {transformers}: {short}",
        "detail": "Эти импорты стоят в try/except ImportError, под проверкой `if is_..._available()` или внутри "
        "функции: загрузка пройдёт, не заработает только ветка кода, которой они нужны.",
        "fix": _VERSION_FIX,
    },
    "remote_code.transformers-broken": {
        "title": "В transformers {transformers} есть {short}, но импорт здесь падает",
        "fix": "Почините установку: `python -c \"import {module}\"` покажет ошибку; обычно не совпадают torch и "
        "transformers (см. находки проверки Environment).",
    },
    "remote_code.missing-package": {
        "title": "Для remote code нужны неустановленные пакеты: {names}",
        "detail": "transformers проверяет все импорты файла remote code до загрузки и отказывает с 'This modeling file "
        "requires the following packages that were not found in your environment'.",
        "fix": "`pip install {pip_args}`",
    },
    "remote_code.optional-package": {
        "title": "Не установлены необязательные пакеты remote code: {names}",
        "detail": "Их импорты защищены (try/except ImportError или проверка `if is_..._available()`): код работает и "
        "без них, по запасному пути.",
        "fix": "Необязательно: `pip install {pip_args}`, чтобы работала ветка кода, которой они нужны.",
    },
    "remote_code.network": _hazard(
        "Обращение к сети",
        "Уберите сетевой вызов `{call}` в {where}: загрузка и обучение читают только локальные файлы (передавайте "
        "локальные пути или PIL-изображения, а не URL).",
    ),
    "remote_code.process": _hazard(
        "Запуск других программ",
        "Уберите `{call}` в {where} или не доверяйте этому коду: модели незачем запускать программы.",
    ),
    "remote_code.eval": _hazard(
        "Выполнение кода, собранного из строк",
        "Замените `{call}(...)` в {where} обычным кодом (для литералов — `ast.literal_eval`) или не доверяйте этому коду.",
    ),
    "remote_code.pickle": _hazard(
        "Распаковка pickle (unpickling может выполнить любой код)",
        "Замените `{call}` в {where} на safetensors или `torch.load(..., weights_only=True)`.",
    ),
    "remote_code.torch-load": _hazard(
        "torch.load без weights_only=True",
        "Напишите `torch.load(..., weights_only=True)` в {where}.",
        detail=(
            _ON_IMPORT + " torch {torch_safe} по умолчанию грузит с weights_only=True, но более старый torch здесь "
            "распакует произвольный код.",
            _ON_IMPORT + " torch {torch_unsafe} здесь распакует произвольный код (weights_only=True по умолчанию "
            "только с 2.6).",
            "torch {torch_safe} по умолчанию грузит с weights_only=True, но более старый torch здесь распакует "
            "произвольный код.",
            "torch {torch_unsafe} здесь распакует произвольный код (weights_only=True по умолчанию только с 2.6).",
        ),
    ),
    "remote_code.file-write": _hazard(
        "Запись или удаление файлов вне кэша модели",
        "Уберите `{call}` в {where} или пусть он пишет только в папку, которую передаёт вызывающий код.",
    ),
    "remote_code.obfuscated": _hazard(
        "Обфусцированный код",
        "Не доверяйте этому коду, пока `{call}` в {where} не раскодирован и не просмотрен: модели незачем прятать текст.",
    ),
    "remote_code.cuda": _hazard(
        "CUDA-устройство зашито в код (модель не запустится на CPU и других устройствах)",
        "Замените `{call}` в {where} на `.to(device)` (например, `.to(self.device)` или `.to(input_ids.device)`).",
    ),
    "remote_code.unpinned": {
        "title": (
            "Remote code разрешён (trust_remote_code) без проверенного закрепления (revision: {revision_shown}) — "
            "принято, потому что задан {allowed_by}",
            "Remote code разрешён (trust_remote_code) без проверенного закрепления (revision: {revision_shown})",
            "Remote code не импортируется: revision не закрепляет его проверяемо",
        ),
        "detail": (
            "Файлы remote code не совпадают с {given}: сейчас их дайджест {digest}. " + _UNPINNED_RISK,
            "Git-checkout стоит на {revision}, но эти файлы remote code отличаются от коммита (изменены, не "
            "отслеживаются или игнорируются): {dirty}. " + _UNPINNED_RISK,
            "В папке коммит {head}, а не {revision}. " + _UNPINNED_RISK,
            "{plain_folder} — ни git-checkout, ни снапшот кэша хаба, поэтому ничто не показывает, из какого коммита "
            "её файлы: хеш коммита для неё ничего не доказывает. " + _UNPINNED_RISK,
            "`{branch}` — имя ветки или тега, а не коммит: завтра оно может указывать на другой код. " + _UNPINNED_RISK,
            "--dsocr-revision не задан. " + _UNPINNED_RISK,
        ),
        "fix": (
            "Закрепите проверенный здесь коммит: `--dsocr-revision {commit}`, а в скрипте обучения — "
            "`from_pretrained(..., revision=\"{commit}\", trust_remote_code=True)`.",
            "Закрепите проверенные здесь файлы по содержимому: `--dsocr-revision {digest}` (`model.revision` в "
            "конфиге обучения); любое их изменение меняет дайджест.",
            "Перезапустите с --dsocr-revision {pin} (дайджест прочитанных здесь файлов) или с --dsocr-allow-unpinned, "
            "если принимаете риск.",
        ),
    },
    "remote_code.untrusted": {
        "title": "Remote code не импортируется без --dsocr-trust-remote-code",
        "fix": _TRUST_FIX,
    },
    "remote_code.prerequisite": _prerequisite(),
    # ---------------------------------------------------------------- model API
    "model_api.no-auto-class": {
        "title": "Ни один Auto-класс не загружает этот чекпойнт",
        "fix": "Загружайте класс из `architectures` в config.json напрямую или почините auto_map чекпойнта.",
    },
    "model_api.no-image-input": {
        "title": "forward() не принимает изображений",
        "fix": "Проверьте, что это vision-language чекпойнт, а не его текстовая языковая модель.",
    },
    "model_api.no-labels": {
        "title": "forward() не принимает labels: loss придётся считать снаружи",
        "fix": "Переопределите Trainer.compute_loss или возьмите causal-LM класс чекпойнта.",
    },
    "model_api.meta-build": {
        "status": "warn",
        "title": "Экземпляр без весов не собирается: {error}",
        "fix": "Проверка шага обучения загрузит настоящие веса и покажет, падает ли from_pretrained так же.",
    },
    "model_api.unknown-model-type": {
        "title": "transformers {transformers} не знает model_type `{model_type}`, а своего кода чекпойнт не подключает",
        "fix": ("`pip install 'transformers>={since}'`", "Обновите transformers до релиза с этой моделью."),
    },
    "model_api.model-type-mismatch": {
        "title": (
            "{file} указывает processor_class {cls} — процессор типа `{other}`, а в config.json model_type `{model_type}`",
            "В {file} model_type `{other}`, а в config.json — `{model_type}`",
        ),
        "detail": (
            "Файлы чекпойнта расходятся в том, что это за модель: AutoProcessor не может собрать {cls} и возвращает только "
            "то, что загружается само (у DeepSeek-OCR v1 — голый токенизатор), а не процессор этой модели. При загрузке "
            "возможно и предупреждение `You are using a model of type {other} to instantiate a model of type "
            "{model_type}` (у DeepSeek-OCR v1 оно есть): оно из этих файлов, веса в порядке.",
            "Файлы чекпойнта расходятся в том, что это за модель: то, что AutoProcessor собирает из {file}, относится к "
            "`{other}`, а не к этой модели. При загрузке возможно и предупреждение `You are using a model of type "
            "{other} to instantiate a model of type {model_type}` (у DeepSeek-OCR v1 оно есть): оно из этих файлов, "
            "веса в порядке.",
        ),
        "fix": (
            "Не собирайте батчи через AutoProcessor: используйте `{builder}` — он сам раскладывает изображения для "
            "{model_type}; тогда предупреждение о типе {other} ни на что не влияет.",
            "Верните {file} из того чекпойнта, откуда веса (тот же репозиторий и ревизия), чтобы AutoProcessor собирал "
            "процессор этой модели, или собирайте батчи сборщиком dsocr_probe для этой модели.",
        ),
    },
    "model_api.config-import": {
        "title": "Загрузка remote-code конфига падает: {error}",
        "detail": "Загрузка remote-code конфига импортирует модули чекпойнта; какого имени или пакета не хватает — "
        "см. находки проверки Remote code.",
        "fix": "Поставьте релиз transformers, под который написан remote code (см. проверку Remote code).",
    },
    # ---------------------------------------------------------------- processor
    "processor.class-not-shipped": {
        "title": "{file} указывает processor_class {declared}, которого нет ни в transformers, ни в чекпойнте",
        "detail": "AutoProcessor откатывается на один токенизатор; при загрузке возможно и предупреждение о другом типе "
        "модели.",
        "fix": "Собирайте входы изображений сборщиком батчей для этого семейства моделей, а не процессором.",
    },
    "processor.tokenizer-only": {
        "title": "AutoProcessor возвращает только токенизатор ({kind}): изображения он не принимает",
        "detail": (
            "processor(images=..., text=...) → {error}",
            "processor(images=..., text=...) молча игнорирует изображения: коллатор на нём будет учиться только на тексте.",
        ),
        "fix": "Не передавайте изображения в процессор. Используйте проверенный сборщик батчей: "
        "`from dsocr_probe import DeepseekOCRCollator; collator = DeepseekOCRCollator(tokenizer, mode='gundam')` "
        "и `Trainer(..., data_collator=collator)`; он сам готовит изображения и раскладку image-токенов.",
    },
    "processor.no-image-token": {
        "title": "В токенизаторе нет токена {token!r}",
        "fix": "Используйте файлы токенизатора из самого чекпойнта; {token!r} должен быть одним добавленным "
        "special-токеном.",
    },
    "processor.image-token-mismatch": {
        "title": "В config.json image_token_id = {config_id}, а токенизатор даёт {token!r} id {token_id}",
        "fix": "Токенизатор и веса из разных чекпойнтов: загружайте оба из одной папки.",
    },
    "processor.no-pad": {
        "title": "У токенизатора нет pad-токена",
        "fix": "Поставьте `tokenizer.pad_token = tokenizer.eos_token` до сборки батчей больше чем из одного примера.",
    },
    "processor.prerequisite": _prerequisite(),
    # ---------------------------------------------------------------- training config
    "train_config.missing": {
        "title": "Нет конфига обучения {path}",
        "fix": "Передайте YAML, который читает ваш скрипт обучения, например --dsocr-train-config "
        "configs/training_config.yaml.",
    },
    "train_config.encoding": {
        "title": "{path} — не текст в UTF-8 (байт {byte})",
        "fix": "Сохраните файл в UTF-8.",
    },
    "train_config.yaml": {
        "title": "{where}: невалидный YAML",
        "fix": "Исправьте синтаксис YAML в этой строке (отступы, пропущенное двоеточие, табы).",
    },
    "train_config.not-mapping": {
        "title": "В {path} лежит {type}, а не словарь (mapping)",
        "fix": "Конфиг — это mapping: секции model/lora/training/data или аргументы TrainingArguments.",
    },
    "train_config.section": {
        "title": "{path}: секция `{section}` должна быть mapping, а не {type}",
        "fix": "Напишите `{section}:` и под ним строки `key: value` с отступом.",
    },
    "train_config.deprecated-argument": {
        "title": "`{key}` устарел с transformers {introduced}: используйте `{use}`",
        "fix": "Переименуйте `{key}:` в `{rename_to}:` до перехода на {removed}, где его уже нет.",
    },
    "train_config.renamed-argument": {
        "title": (
            "{where} не принимает аргумент `{key}` (убран в transformers {removed})",
            "{where} не принимает аргумент `{key}` (и никогда не принимал)",
        ),
        "fix": "Используйте `{use}` вместо `{key}`.",
    },
    "train_config.unknown-argument": {
        "title": "{where} не принимает аргумент `{key}`",
        "fix": ("Возможно, имелось в виду `{suggestion}`?", "Уберите `{key}`: в transformers {installed} такого аргумента нет."),
    },
    "train_config.trainer-argument": {
        "title": "`{key}` — аргумент Trainer, а не TrainingArguments",
        "detail": "Trainer(tokenizer=...) заменили на {replaced_by} в 4.46.0 и убрали в 5.0.0.",
        "fix": "Уберите `{key}` из секции training и передайте его как {pass_as}.",
    },
    "train_config.invalid-value": {
        "title": "{where} не принимает эти значения на этой машине: {error}",
        "fix": "Исправьте значение, названное в сообщении.",
    },
    "train_config.auto-class": {
        "title": "model.auto_class {auto_class} не загружает этот чекпойнт: {reason}",
        "fix": (
            "Укажите `model.auto_class: {use}` и загружайте через `{use}.from_pretrained`.",
            "См. находки проверки Model API.",
        ),
    },
    "train_config.batch-larger-than-data": {
        "title": "per_device_train_batch_size {bs} больше числа обучающих примеров ({n})",
        "detail": "Каждый батч — это весь датасет (примеров: {n}); память, заложенная под батч {bs}, не используется.",
        "fix": "Поставьте `per_device_train_batch_size: {n}` или меньше, либо добавьте данных.",
    },
    "train_config.effective-batch": {
        "title": "Эффективный батч {effective} ({bs} x {ga} accumulation x {devices} устр.) больше датасета "
        "(примеров: {n}): шагов оптимизатора на эпоху — {updates}, всего — {total}",
        "fix": "Пока примеров {n}: `per_device_train_batch_size: 1` и `gradient_accumulation_steps: 1`; "
        "сначала наращивайте данные, потом батч.",
    },
    "train_config.epochs": {
        "title": "Эпох: {epochs:g}, примеров: {n} — модель их просто запомнит",
        "detail": "Training loss дойдёт до нуля, а на новых страницах модель ничего полезного не покажет.",
        "fix": "Обучайте 3-5 эпох и добавьте данных; следите за validation loss (eval_strategy: epoch).",
    },
    "train_config.remove-unused-columns": {
        "title": "remove_unused_columns не равен False: scripts/train_lora.py ставит false сам, ваш собственный скрипт "
        "обучения должен тоже",
        "detail": "При значении по умолчанию True Trainer оставляет только колонки, названные в forward(); коллатор "
        "получает примеры без 'image' и 'text'.",
        "fix": "Поставьте `remove_unused_columns: false` в секции training.",
    },
    "train_config.collator-import": {
        "title": "data.collator `{spec}` не импортируется: {error}",
        "fix": "Укажите его как `package.module:name`, импортируемый из папки, откуда запускается обучение.",
    },
    "train_config.workers-pickle": {
        "title": "DataLoader с воркерами ({workers}) требует, чтобы сборщик батчей и датасет сериализовались: {problem}",
        "fix": "Поставьте `dataloader_num_workers: 0` и не кладите в секцию data объекты модели и процессора с "
        "открытыми дескрипторами.",
    },
    "train_config.collator-pickle": {
        "title": (
            "DataLoader с воркерами ({workers}) на {os} (spawn) требует сериализуемый коллатор: {problem}",
            "Коллатор не сериализуется ({problem}): здесь с воркерами ({workers}) это не мешает, но на Windows/macOS "
            "с воркерами обучение упадёт",
        ),
        "detail": "Воркеры на {os} запускаются через spawn и получают коллатор и датасет через pickle. Функции, "
        "объявленные внутри других функций, и классы из модулей trust_remote_code (transformers_modules.*) не "
        "сериализуются.",
        "fix": (
            "Используйте коллатор верхнего уровня, например `dsocr_probe.DeepseekOCRCollator`, не храните в нём "
            "модель и процессор или поставьте `dataloader_num_workers: 0` (на {os} воркеры стартуют через spawn).",
            "Используйте коллатор верхнего уровня, например `dsocr_probe.DeepseekOCRCollator`.",
        ),
    },
    "train_config.task-type": {
        "status": "fail",
        "title": "LoRA task_type {task} не подходит для {arch}-модели",
        "detail": "Seq2seq-обёртка PEFT передаёт decoder_input_ids, и каждый шаг падает с `{error}`.",
        "fix": "Поставьте `lora.task_type: {want}` (TaskType.{want}).",
    },
    "train_config.lora-targets-missing": {
        "title": "LoRA target_modules {targets} не совпадают ни с одним модулем модели",
        "fix": "Берите проекции языковой модели: {suggestion}.",
    },
    "train_config.lora-refused": {
        "title": "get_peft_model не принимает эту секцию LoRA: {error}",
        "fix": "Исправьте значение в секции `lora`, названное в сообщении.",
    },
    "train_config.lora-vision-only": {
        "title": "Все LoRA-адаптеры стоят на vision-части, а она работает под torch.no_grad(): учиться нечему",
        "fix": "Ставьте адаптеры на языковую модель: {suggestion}.",
    },
    "train_config.lora-vision-some": {
        "title": "{frozen} из {matched} LoRA-адаптеров стоят на vision-части (там нет градиентов)",
        "detail": "Эти адаптеры занимают память и параметры, но не меняются: {modules}",
        "fix": "Ограничьте target_modules языковой моделью.",
    },
    "train_config.lora-targets": {
        "status": "skip",
        "title": ("LoRA target_modules не сверены: {cause}", "LoRA target_modules не сверены: модель не собирается без весов"),
        "fix": ("{cause_fix}", "См. проверку Model API."),
    },
    "train_config.unknown-section": {
        "title": "`{key}:` — не секция, которую читает скрипт обучения: возможно, имелось в виду `{near}:`?",
        "detail": "Всё под `{key}:` игнорируется, и вместо этого используются (и проверяются) значения `{near}` по "
        "умолчанию.",
        "fix": "Переименуйте `{key}:` в `{near}:`.",
    },
    "train_config.unknown-key": {
        "terms": {"top level": "верхний уровень"},
        "title": (
            "`{key}` ({where!t}) скрипт обучения не читает: возможно, имелось в виду `{near}`?",
            "`{key}` ({where!t}) скрипт обучения не читает",
        ),
        "fix": ("Переименуйте его в `{near}`.", "Уберите `{key}` или читайте его в своём коде."),
    },
    "train_config.trainer-key": {
        "title": "{path}: `trainer` должен быть строкой `package.module:Class`, а не {type}",
        "fix": "Напишите на верхнем уровне, например, `trainer: transformers:Trainer` или `trainer: trl:SFTTrainer`.",
    },
    "train_config.trainer-num-items": {
        "title": "{cls}.{method} не принимает `num_items_in_batch`, а transformers {installed} его передаёт",
        "detail": "{signature_now} С transformers 4.46.0 Trainer вызывает `compute_loss(model, inputs, "
        "num_items_in_batch=...)` и `training_step(model, inputs, num_items_in_batch)`; первый же шаг падает с "
        "`unexpected keyword argument 'num_items_in_batch'` (или с лишним позиционным аргументом).",
        "fix": "Добавьте параметр: `def {method}(self, model, inputs, {signature}):` и передавайте его в `super()`.",
    },
    "train_run.trainer-import": {
        "title": "trainer `{spec}` не импортируется: {error}",
        "fix": "Укажите класс Trainer как `package.module:Class`, импортируемый из папки, откуда запускается обучение "
        "(например, `transformers:Trainer`, `trl:SFTTrainer`), и установите пакет, в котором он лежит.",
    },
    "train_run.trainer-type": {
        "title": "trainer `{spec}` — это {found}, а не подкласс transformers.Trainer",
        "fix": "Укажите класс Trainer: `transformers:Trainer`, свой подкласс или `trl:SFTTrainer`.",
    },
    "train_run.collator-class": {
        "title": "data.collator `{spec}` — класс, конструктору которого нужно аргументов: {count} ({names})",
        "fix": "Укажите объект, созданный на уровне модуля (`module:collator`), или класс, которому нужен только "
        "токенизатор или процессор.",
    },
    "train_run.collator-import": {
        "title": "data.collator `{spec}` не импортируется: {error}",
        "fix": "Укажите его как `package.module:name`, импортируемый из папки, откуда запускается обучение.",
    },
    "train_config.number-as-string": {
        "title": "`{key}: {raw}` читается как строка {value}, а не число",
        "detail": "YAML 1.1 (PyYAML) читает число без точки или с порядком без знака как текст. TrainingArguments "
        "сохраняет его как есть, и обучение падает в оптимизаторе или планировщике с "
        "`'<=' not supported between instances of 'float' and 'str'`.",
        "fix": "Напишите `{write}`.",
    },
    "train_config.bool-as-string": {
        "title": "`{key}` — строка {value}, а не true или false: любой непустой текст считается истиной",
        "fix": "Напишите `{write}` без кавычек.",
    },
    "train_config.bad-choice": {
        "title": "`{key}: {raw}` — не из значений, которые принимает установленный transformers",
        "detail": "Допустимо: {expected}.",
        "fix": ("Используйте `{key}: {near}`.", "Используйте одно из: {expected}."),
    },
    "train_config.fp16-and-bf16": {
        "title": "`fp16` и `bf16` оба true: TrainingArguments допускает не больше одного",
        "fix": "Оставьте `bf16: true` на GPU с compute capability 8.0 и выше, иначе `fp16: true`; но не оба.",
    },
    "train_config.out-of-range": {
        "title": "`{key}: {raw}` вне допустимого диапазона: нужно {expected}",
        "detail": "TrainingArguments его сохраняет; обучение упадёт или ничему не научится, когда до него дойдёт.",
        "fix": "Задайте `{key}` значение {expected}.",
    },
    "train_config.null-value": {
        "title": "`{key}` пустой (null): нужно {expected!t}",
        "terms": {"a number": "число", "a whole number": "целое число", "true or false": "true или false"},
        "fix": "Уберите строку `{key}:`, чтобы взять значение по умолчанию, или задайте {expected!t}.",
    },
    "train_config.wrong-type": {
        "title": "`{key}: {raw}` — неверный тип: нужно {expected!t}",
        "terms": {"a number": "число", "a whole number": "целое число", "true or false": "true или false",
                  "a finite number": "конечное число"},
        "fix": ("Напишите `{write}`.", "Задайте `{key}` как {expected!t}."),
    },
    "train_config.batch-math": {
        "status": "skip",
        "title": "Размер батча не сверен с данными: нет обучающих примеров",
        "fix": "Передайте --dsocr-data или задайте data.train_dir.",
    },
    # ---------------------------------------------------------------- dataset
    "dataset.missing": {
        "title": "Нет папки датасета {folder}",
        "fix": "Передайте в --dsocr-data папку с train/ и val/ (в каждой — metadata.json).",
    },
    "dataset.no-metadata": {
        "title": "Нет metadata.json ни в {folder}, ни в её train/ и val/",
        "fix": "Запишите train/metadata.json как список строк вида "
        "{{\"image_path\": \"images/00001.jpg\", \"text\": \"...\"}}.",
    },
    "dataset.bad-rows": {
        "title": "Непригодных строк датасета: {n}; обучение остановится на первой из них",
        "fix": "Исправьте или удалите каждую строку из таблицы в её metadata-файле; сборщик батчей их не пропускает молча.",
    },
    "dataset.odd-images": {
        "title": "Изображений, на которых модель будет плохо учиться: {n}",
        "fix": "Пересканируйте или обрежьте эти страницы либо уберите их из metadata-файла.",
    },
    "dataset.split-overlap": {
        "title": "Элементов, которые есть больше чем в одном сплите: {n}",
        "detail": "Validation loss на примерах, на которых модель учится, измеряет запоминание, а не чтение.",
        "fix": "Держите каждую страницу (и каждый целевой текст) только в одном сплите.",
    },
    "dataset.duplicates": {
        "title": "Дубликатов внутри сплита: {n}",
        "fix": "Уберите повторы или оставьте их намеренно, как oversampling.",
    },
    "dataset.too-long": {
        "title": "Примеров длиннее max_length {max_length}: {n}",
        "detail": "Обрезанный целевой текст учит модель останавливаться посреди страницы; сборщик батчей такие строки "
        "не принимает.",
        "fix": (
            "Поднимите data.max_length хотя бы до {longest_whole}, возьмите режим с меньшим числом image-токенов "
            "или разбейте эти страницы.",
            "Поднимите data.max_length хотя бы до {longest} плюс токены промпта и изображения или разбейте эти страницы.",
        ),
    },
    "dataset.lengths": {
        "status": "skip",
        "title": "Длины целевых текстов не измерены: {cause}",
        "fix": "{cause_fix}",
    },
    "input.no-dataset": {
        "title": "Нет датасета для проверки",
        "fix": "Передайте --dsocr-data DIR (train/ и val/ с metadata.json) или задайте data.train_dir в конфиге обучения.",
    },
    "input.no-training config": {
        "title": "Нет конфига обучения для проверки",
        "fix": "Передайте YAML, который читает ваш скрипт обучения: --dsocr-train-config configs/training_config.yaml.",
    },
    # ---------------------------------------------------------------- batch
    "batch.builder-raised": {
        "title": "Коллатор падает на первых обучающих строках ({count}): {error}",
        "fix": (
            "Процессор — это голый токенизатор и `{rejected_arg}` не принимает: используйте как data collator "
            "`dsocr_probe.DeepseekOCRCollator(tokenizer, mode=...)`.",
            "Исправьте строку или коллатор, названные в сообщении; сборщик называет пример по индексу и пути.",
        ),
    },
    "batch.unknown-key": {
        "title": (
            "В батче есть `{key}`, которого нет в forward(): эта модель принимает `{near}`",
            "В батче есть `{key}`, которого нет в forward()",
        ),
        "detail": ("Каждый шаг падает с `{error}`.", "forward() проглатывает его через **kwargs и игнорирует."),
        "fix": (
            "Отдавайте `{near}` вместо `{key}` (см. эталонную раскладку батча).",
            "Уберите `{key}` из выхода коллатора.",
        ),
    },
    "batch.missing-key": {
        "title": ("В батче нет {keys}", "В батче не хватает ключей: {problem}"),
        "detail": "Не хватает {keys}. Без входов изображений forward падает (или модель учится только на тексте), "
        "без labels нет loss.",
        "fix": "Используйте сборщик dsocr_probe для этого семейства или добавьте недостающие ключи в выход коллатора.",
    },
    "batch.no-bos": {
        "title": "Примеры не начинаются с bos: {problem}",
        "fix": "Начинайте каждый пример с bos-токена токенизатора; сборщики dsocr_probe добавляют его сами.",
    },
    "batch.image-slots": {
        "title": "Число image-слотов не совпадает с числом визуальных признаков: {problem}",
        "fix": "Отдавайте по одному image-слоту на визуальный признак: глобальный вид — nb*(nb+1)+1, кропы — "
        "nq*h*(nq*w+1) (число даёт `dsocr_probe.collators.deepseek_ocr_v1.image_token_count(width, height, mode)`).",
    },
    "batch.image-features": {
        "status": "fail",
        "terms": {"per sample": "на пример", "in all": "всего"},
        "title": "В батче image-слотов {scope!t}: {slots}, а визуальная часть модели выдаёт признаков: {features}",
        "detail": "Модель записывает по одному визуальному признаку в каждый image-слот по порядку: при таких числах её "
        "forward падает с `Image features and image tokens do not match` (модель без этой проверки кладёт признаки не "
        "на свои места). Признаки посчитаны запуском {method} на модели без весов.",
        "fix": (
            "{processor} делает image-слотов {scope!t}: {slots}, а визуальная часть модели выдаёт {features}: собирайте "
            "батчи с настройками процессора, с которыми обучен чекпойнт (`AutoProcessor.from_pretrained` на папке модели "
            "с файлами процессора, пришедшими вместе с весами, без переопределения размера изображения, нарезки на "
            "тайлы, patch_size и downsample_ratio); сборщик dsocr_probe на таком процессоре даёт по слоту на признак.",
            "Отдавайте по одному image-токену на визуальный признак ({features} {scope!t}): пусть image-токен "
            "разворачивает процессор чекпойнта (`AutoProcessor.from_pretrained` на папке модели), или используйте "
            "сборщик dsocr_probe для этого семейства моделей.",
        ),
    },
    "batch.labels-on-images": {
        "title": "Labels стоят на позициях изображения: {problem}",
        "fix": "Ставьте labels = -100 на всех позициях изображения (где images_seq_mask = True, на каждом "
        "токене-заполнителе изображения).",
    },
    "batch.mask-dtype": {
        "title": ("images_seq_mask имеет тип {dtype}, а не bool", "Маска images_seq_mask не булева: {problem}"),
        "detail": "masked_scatter_ принимает только булевы маски, а не {dtype}: forward упадёт.",
        "fix": "Создавайте images_seq_mask с dtype=torch.bool.",
    },
    "batch.pixel-dtype": {
        "title": ("{key} имеет тип {dtype}, а модель работает в {model_dtype}",
                  "Тип пикселей не совпадает с типом модели: {problem}"),
        "detail": "Без autocast первая свёртка упадёт: Input type ({dtype}) and bias type ({model_dtype}) should be the same.",
        "fix": (
            "Готовьте пиксели в dtype модели (сборщики dsocr_probe принимают `dtype={model_dtype}`) или обучайте с "
            "autocast (bf16: true).",
            "Готовьте пиксели в dtype модели или обучайте с autocast (bf16: true).",
        ),
    },
    "batch.first-sample-text-only": {
        "title": "Первый пример батча без изображения: {problem}",
        "fix": "Ставьте первым в каждом батче пример с изображением или собирайте текстовые примеры в отдельные батчи.",
    },
    "batch.no-target": {
        "title": "Есть примеры без обучающих токенов: {problem}",
        "fix": "В labels каждого примера должны быть его целевой текст и eos (не -100).",
    },
    "batch.padding": {
        "title": "Labels или image-слоты на паддинге: {problem}",
        "fix": "Ставьте labels = -100 на паддинге и не кладите туда image-слоты (attention_mask 0).",
    },
    "batch.layout": {
        "status": "fail",
        "title": "Раскладка батча не совпадает с моделью: {problem}",
        "fix": "Собирайте батчи сборщиком dsocr_probe для этого семейства моделей: он следует официальной раскладке.",
    },
    "batch.no-rows": {
        "title": "Нет пригодных обучающих строк, чтобы собрать батч",
        "fix": "См. проверку Dataset.",
    },
    "batch.prerequisite": _prerequisite(),
    # ---------------------------------------------------------------- loading
    "loading.tokenizer": {
        "title": "{auto_class} не загружает {path}: {error}",
        "fix": "Скопируйте файлы токенизатора из чекпойнта (tokenizer.json, tokenizer_config.json, "
        "special_tokens_map.json) в папку модели.",
    },
    "loading.processor": {
        "title": "{auto_class} не загружает {path}: {error}",
        "fix": "Скопируйте файлы процессора и токенизатора из чекпойнта в папку модели.",
    },
    "loading.dtype": {
        "title": "{where}: {value!r} — не dtype",
        "fix": "Укажите для {where} одно из: bfloat16, float16, float32 (или auto).",
    },
    "loading.no-auto-class": {
        "title": "auto_map в config.json не называет класс модели ({mapped})",
        "fix": "Восстановите config.json из чекпойнта: auto_map должен называть AutoModel (или Auto-класс с головой задачи).",
    },
    "loading.no-weights": {
        "title": "В {path} нет файлов весов (*.safetensors или *.bin)",
        "fix": "Скачайте чекпойнт целиком (`huggingface-cli download <id> --revision <commit>`) и передайте его папку.",
    },
    "loading.remote-import": {
        "title": "Загрузка модели импортирует код, который падает: {error}",
        "fix": "Поставьте релиз transformers, под который написан remote code (см. проверку Remote code).",
    },
    "loading.model": {
        "title": "{cls}.from_pretrained падает: {error}",
        "fix": "Какой класс грузит этот чекпойнт — см. проверку Model API; проверьте, что файлы весов целые.",
    },
    "loading.device": {
        "title": "Перенос модели на {device} падает: {error}",
        "detail": "`no kernel image is available` значит, что в этой сборке torch нет ядер для GPU (см. проверку CUDA); "
        "`Torch not compiled with CUDA enabled` — что torch собран только для CPU.",
        "fix": "Поставьте сборку torch, которую называет проверка CUDA, или запускайте шаг на CPU с --dsocr-device cpu.",
    },
    "loading.builder": {
        "title": "Сборщик батчей для {family} не принимает эти настройки: {error}",
        "fix": "Исправьте секцию data конфига обучения (mode, max_length, prompt), как сказано в сообщении.",
    },
    "loading.untrusted": {
        "terms": {"tokenizer": "Токенизатор", "processor": "Процессор", "model": "Модель"},
        "title": "{what!t} — это remote code ({parts}): без --dsocr-trust-remote-code не импортируется",
        "fix": _TRUST_FIX,
    },
    "loading.unpinned": {
        "terms": {"tokenizer": "Токенизатор", "processor": "Процессор", "model": "Модель"},
        "title": "{what!t} — это remote code ({parts}): не импортируется, revision — не закреплённый коммит и не дайджест, "
        "сверенный с его файлами",
        "fix": "Закрепите проверенные файлы: --dsocr-revision {digest} (`model.revision` в конфиге обучения; коммит "
        "снапшота хаба или чистого git-checkout тоже закрепляет) или, если риск осознан, --dsocr-allow-unpinned "
        "(`--allow-unpinned` для dsocr-train).",
    },
    # ---------------------------------------------------------------- target
    "target.not-a-folder": {
        "title": "`{model}` — не папка модели",
        "fix": "Передайте папку с config.json или id на хабе вида `deepseek-ai/DeepSeek-OCR`.",
    },
    "target.revision-mismatch": {
        "title": "--dsocr-revision {revision} не совпадает с папкой снапшота: в ней коммит {commit}",
        "fix": "Передайте снапшот коммита {revision} или, проверив его код, `--dsocr-revision {commit}`.",
    },
    "target.not-cached": {
        "title": "`{model}` нет в локальном кэше Hugging Face",
        "fix": "Проверки ничего не скачивают. Скачайте один раз: `{download} {model}{rev}` "
        "или передайте локальную папку через --dsocr-model.",
    },
    "target.no-config": {
        "title": "В {folder} нет config.json",
        "fix": "Укажите в --dsocr-model саму папку модели (ту, где config.json и веса).",
    },
    "target.bad-config": {
        "title": "{path} — невалидный JSON: {error}",
        "fix": "Восстановите config.json из чекпойнта.",
    },
    # ---------------------------------------------------------------- training step
    "step.task-type": {
        "title": "LoRA task_type {given} для этой модели неверен: нужен {want}",
        "detail": (
            "С {given} падает get_peft_model: {wrap_error}. Дальше проверка шла с {want}.",
            "С {given} падает первый forward: {forward_error}. Дальше проверка шла с {want}.",
            "С {given} forward проходит, но peft подаёт в модель decoder-входы, которых у неё нет. Дальше проверка шла "
            "с {want}.",
        ),
        "fix": "Поставьте `lora.task_type: {want}` (peft `TaskType.{want}`).",
    },
    "step.forward-fails": {
        "title": "Обучение падает: {exception}: {error}",
        "detail": "Ошибка во время обучения {trainer}, коллатор {collator}.",
        "fix": (
            "Эмбеддингам включили requires_grad (gradient checkpointing включён до get_peft_model или вызван "
            "enable_input_require_grads), а эта модель пишет в них признаки изображения in-place: пусть Trainer "
            "включает checkpointing после обёртки, с `gradient_checkpointing_kwargs: {checkpointing_kwargs}`.",
            "Добавьте `{missing_arg}=None` в compute_loss подкласса Trainer (см. проверку конфига обучения).",
            "Модель считает loss по `{needs}`: коллатор должен класть их в каждый батч (см. проверку Batch).",
            "Сверьтесь с проверками Batch и Model API; если включён gradient_checkpointing, попробуйте без него.",
        ),
    },
    "step.lora-wrap": {
        "title": "get_peft_model падает с этим конфигом LoRA: {exception}: {error}",
        "fix": (*_TARGETS_FIX, "Исправьте значение в секции `lora`, названное в сообщении (см. проверку конфига обучения)."),
    },
    "step.loss-not-finite": {
        "title": "Loss первого шага: {loss}",
        "detail": "NaN или бесконечный loss на первом шаге — это переполнение в fp16, батч, где все labels = -100, "
        "или битые веса.",
        "fix": "Обучайте в bf16 или fp32 (не fp16) и проверьте находки проверки Batch про labels.",
    },
    "step.gradients-not-finite": {
        "title": "Адаптеров с NaN или бесконечными градиентами на первом шаге: {count}",
        "detail": "{modules}",
        "fix": "Обучайте в bf16 или fp32 вместо fp16 и снизьте learning rate.",
    },
    "step.adapters-vision-only": {
        "title": "Адаптеры только на vision-модулях: ни один не получает градиент, учиться нечему",
        "detail": "Vision-энкодеры и проектор работают под torch.no_grad() внутри forward модели (или лежат вне пути "
        "loss): адаптеры там остаются с начальными значениями.",
        "fix": _TARGETS_FIX,
    },
    "step.no-gradients": {
        "title": "Ни один из адаптеров ({count}) не получает градиент",
        "detail": "Reentrant gradient checkpointing (use_reentrant={use_reentrant}) не пропускает градиент в "
        "checkpoint-блок, если его вход не требует градиента, а выход замороженных эмбеддингов его не требует.",
        "fix": ("Поставьте `gradient_checkpointing_kwargs: {{use_reentrant: false}}` (сейчас use_reentrant={use_reentrant}).",
                *_TARGETS_FIX),
    },
    "step.frozen-with-gradients": {
        "title": "Замороженных весов, получивших градиенты: {count}",
        "detail": "{names}",
        "fix": "Что-то разморозило базовые веса после обёртки: оборачивайте в peft последним и не ставьте requires_grad "
        "вручную.",
    },
    "step.trainable-without-gradients": {
        "title": "Обучаемых параметров помимо адаптеров, не получивших градиент: {count}",
        "detail": "{names}",
        "fix": "Уберите их из `modules_to_save` (они не меняются) или проверьте, что они используются в forward().",
    },
    "step.adapters-without-gradients": {
        "title": (
            "{count} из {total} адаптеров не получают градиент ({on_vision} — на vision-части под torch.no_grad())",
            "{count} из {total} адаптеров не получают градиент",
        ),
        "detail": "Они занимают память и параметры, но не меняются: {modules}",
        "fix": _TARGETS_FIX,
    },
    "step.loss-falls": {
        "title": "Loss падает на повторяемом батче: {first} → {last} за {steps} шагов",
    },
    "step.loss-flat": {
        "title": "Loss не падает на повторяемом батче ({trace})",
        "detail": "Шагов оптимизатора настроенного обучения на одном и том же батче: {steps}, learning rate до {lr:.3g}: "
        "адаптеры изменились, а loss за ними не пошёл. В начале warm-up или при малом learning rate это бывает "
        "нормой; иначе labels не размечают целевой текст.",
        "fix": "Проверьте находки проверки Batch про labels; если расписание долго разогревается, это ожидаемо.",
    },
    "step.trainer-init": {
        "status": "fail",
        "title": "{trainer}(...) не принимает настроенный запуск: {error}",
        "detail": "Создан так же, как его создаёт scripts/train_lora.py, с вашими настройками оценки, сохранения и отчётов.",
        "fix": "Исправьте настройку обучения, названную в сообщении (eval-стратегии нужен сплит val; интеграция из "
        "`report_to` должна быть установлена).",
    },
    "step.accumulation-oom": {
        "title": "Не хватило памяти при накоплении градиента по {accumulation} батчам: {message}",
        "fix": "Уменьшите `per_device_train_batch_size` (см. находки про память).",
    },
    "step.no-update": {
        "title": "Адаптеры не изменились за шагов оптимизатора: {steps}",
        "detail": "Градиенты до них дошли (см. выше), но обновления не применились: оптимизатор не содержит параметров "
        "адаптеров или learning rate равен 0.",
        "fix": "Задайте `learning_rate` больше нуля; подкласс Trainer, переопределяющий `create_optimizer`, должен "
        "передавать параметры с `requires_grad=True`.",
    },
    "step.forecast-oom": {
        "title": (
            _FORECAST + " (конфига обучения нет: батч {default_batch}): {need}, больше, чем есть у GPU ({have})",
            _FORECAST + ": {need}, больше, чем есть у GPU ({have})",
        ),
        "detail": "Линейно по токенам и image-слотам через измеренные размеры.",
        "fix": "Поставьте `per_device_train_batch_size: {fit_batch}` и больше gradient accumulation, или "
        + _FIX_MEMORY + ".",
    },
    "step.forecast-tight": {
        "title": (
            _FORECAST + " (конфига обучения нет: батч {default_batch}): {need} из {have} ({share})",
            _FORECAST + ": {need} из {have} ({share})",
        ),
        "fix": "Оставьте запас: " + _FIX_MEMORY + ".",
    },
    "step.out-of-memory": {
        "terms": {"the weights alone": "одних весов"},
        "title": (
            "Не хватило памяти на {device} для батча из {batch} (токенов: {tokens})",
            "Не хватило памяти на {device} для {what!t}",
        ),
        "detail": (
            "{message}\nСамая большая настройка, которая уместилась: батч {fit_batch} x {fit_length} токенов "
            "(пик {fit_peak}).",
            "{message}\nНе уместилось ничего.",
        ),
        "fix": (
            "Поставьте `per_device_train_batch_size: {fit_batch}` и `gradient_accumulation_steps: {accumulation}` или "
            + _FIX_MEMORY + ".",
            "Загружайте в bf16, " + _FIX_MEMORY + ".",
        ),
    },
    "step.gradient-checkpointing": {
        "title": "gradient_checkpointing включён, но модель его не поддерживает: {error}",
        "fix": "Поставьте `gradient_checkpointing: false`, а вместо этого уменьшите батч или max length.",
    },
    "step.timeout": _timeout(),
    "model_api.timeout": _timeout(),
    "processor.timeout": _timeout(),
    "batch.timeout": _timeout(),
    "step.no-data": {
        "title": "Нет обучающих строк, чтобы собрать батч",
        "fix": "Передайте --dsocr-data DIR (train/metadata.json со строками image_path и text).",
    },
    "step.no-usable-rows": {
        "title": "Ни у одной обучающей строки изображение не открывается",
        "fix": "См. проверку Dataset: она называет каждую строку и причину.",
    },
    "step.prerequisite": _prerequisite(),
    # --- target: folders that are not there
    "target.windows-path": {
        "title": "`{model}` — путь Windows, а эта машина работает под {system}",
        "detail": "Буквы дисков и пути с обратными слэшами здесь ничего не значат: папка ищется как относительный путь "
        "и не находится.",
        "fix": "Передайте папку так, как её видит эта машина (в WSL `C:\\models\\x` — это `/mnt/c/models/x`), или "
        "скопируйте папку модели сюда.",
    },
    "target.missing-folder": {
        "title": "Папки модели `{model}` нет ({absolute})",
        "detail": "Относительные пути отсчитываются от папки, в которой запущен pytest: {cwd}.",
        "fix": "Проверьте путь на опечатки (`ls` родительской папки) или передайте id на хабе вида "
        "`deepseek-ai/DeepSeek-OCR`, уже лежащий в локальном кэше.",
    },
    # --- remote code: hazards weighed by reach
    "remote_code.off-path": {
        "title": (
            "Опасные вызовы вне загрузки и обучения: `{call}` в {path} (и ещё {more})",
            "Опасные вызовы вне загрузки и обучения: `{call}` в {path}",
        ),
        "detail": (
            "Ни один из них не выполняется при импорте, в from_pretrained или на шаге обучения; они выполняются, "
            "только когда вызывают {roots}. {guarded} (`{guard_call}`) лежит на пути загрузки или обучения "
            "({guard_path}), но только под `{guard}`, а ни один вызов на этом пути его не задаёт.",
            "Ни один из них не выполняется при импорте, в from_pretrained или на шаге обучения; они выполняются, "
            "только когда вызывают {roots}.",
            "{guarded} (`{guard_call}`) лежит на пути загрузки или обучения ({guard_path}), но только под `{guard}`, "
            "а ни один вызов на этом пути его не задаёт.",
        ),
        "fix": (
            "Обучение можно запускать. Прежде чем самим вызывать {roots}, просмотрите строки из таблицы (eval "
            "сгенерированного текста выполнит всё, что напишет модель; `ast.literal_eval` безопасно разбирает литералы).",
            "Обучение можно запускать. Просмотрите строки из таблицы, прежде чем самим передавать этот аргумент.",
        ),
    },
    # --- hostile inputs: special files, ambiguous datasets, time limits
    "dataset.not-a-folder": {
        "terms": {"a file": "файл", "a named pipe": "именованный канал", "a socket": "сокет",
                  "a character device": "символьное устройство", "a block device": "блочное устройство",
                  "not a regular file": "не обычный файл", "a broken symbolic link": "битая символьная ссылка"},
        "title": "--dsocr-data {folder} — это {what!t}, а не папка",
        "fix": (
            "Передайте папку, в которой он лежит: --dsocr-data {parent}",
            "Передайте в --dsocr-data папку с train/ и val/ (в каждой — metadata.json).",
        ),
    },
    "dataset.no-train-rows": {
        "title": (
            "В сплите train нет пригодных строк ({metadata})",
            "В {folder} нет сплита train: учить не на чем",
        ),
        "detail": (
            "Найдены сплиты: {splits}.",
            "Запуск без обучающих строк останавливается до первого шага или учится ни на чём.",
        ),
        "fix": (
            "Добавьте строки в {metadata} или исправьте те, что перечислены как непригодные.",
            "Положите обучающие строки в train/metadata.json в {folder} (или укажите train_dir в секции data конфига).",
        ),
    },
    "dataset.ambiguous": {
        "title": "Выборов между кандидатами: {n}; то, что не прочитано, перечислено в таблице",
        "fix": "Держите один metadata-файл на папку, одну папку на сплит, один список строк и каждый ключ в строке "
        "один раз, чтобы любой читатель датасета видел те же строки.",
    },
    "dataset.windows-paths": {
        "title": "Путей к изображениям с разделителями Windows (\\), прочитанных через /: {n}",
        "fix": "Пишите / в metadata-файлах: так работает на любой ОС, а скрипт обучения, который открывает эти пути как "
        "написано, упадёт на Linux и macOS.",
    },
    "dataset.outside-folder": {
        "title": "Путей к изображениям, которые выходят из папки датасета через '..': {n}",
        "fix": "Держите изображения внутри папки датасета (или намеренно пишите абсолютные пути): при копировании или "
        "монтировании датасета они потеряются.",
    },
    "dataset.timeout": _timeout(),
    "train_config.timeout": _timeout(),
    "remote_code.timeout": _timeout(),
    # --- LoRA against the installed peft
    "train_config.lora-field-unsupported": {
        "title": ("`lora.{key}` — не поле LoraConfig в peft {peft}: оно появилось в peft {since}",
                  "`lora.{key}` — не поле LoraConfig в peft {peft}"),
        "detail": "`LoraConfig(**lora)` падает с `LoraConfig.__init__() got an unexpected keyword argument '{key}'`.",
        "fix": ("`pip install 'peft>={since}'` (для DeepSeek-OCR v1 с transformers 4.46.x–4.47.1: peft 0.17.1) "
                "или уберите `{key}:`.",
                "Уберите `{key}:` (или исправьте написание)."),
    },
    "train_config.lora-module-type": {
        "title": "peft {peft} не умеет ставить LoRA на модули {type} ({count} совпали с target_modules, например {example})",
        "detail": "get_peft_model падает с: {error}",
        "fix": "Ставьте адаптеры на линейные слои: {suggestion}.",
    },
    # --- environment: compiled extensions and quantization
    "environment.torchvision-import": {
        "title": ("torchvision {torchvision} собран под {tv_build}, а torch {torch} — под {torch_build}: "
                  "`import torchvision` падает",
                  "`import torchvision` падает рядом с torch {torch}: {error}"),
        "detail": "В свежем интерпретаторе `import torchvision` выдаёт `{error}`. Remote code DeepSeek-OCR "
                  "импортирует torchvision, так что модель не загрузится.",
        "fix": "`pip install 'torchvision=={use}'` из того же индекса, откуда ваш torch {torch}, чтобы оба были "
               "собраны под {torch_build}.",
    },
    "environment.flash-attn-import": {
        "title": ("flash-attn {flash_attn} не загружается с torch {torch}: он собран под другой torch ({symbol})",
                  "flash-attn {flash_attn} не загружается с torch {torch}"),
        "detail": "В свежем интерпретаторе `import flash_attn` выдаёт `{error}`. transformers считает установленный "
                  "flash-attn рабочим на машине с CUDA, и тогда remote code DeepSeek-OCR импортирует его — загрузка падает.",
        "fix": "Пересоберите его под установленный torch: `pip install --no-build-isolation --force-reinstall "
               "'flash-attn=={flash_attn}'` (или готовый wheel под torch {torch_minor}; официальное окружение v1 — "
               "flash-attn 2.7.3 с torch 2.6.0), либо `pip uninstall flash-attn` и `attn_implementation: sdpa`.",
    },
    "train_config.quantization-no-bitsandbytes": {
        "title": "Секция model грузит модель в {bits} бит, но bitsandbytes не установлен",
        "detail": "`from_pretrained` с конфигом bitsandbytes падает с ImportError ещё до загрузки весов.",
        "fix": "`pip install bitsandbytes` (на машине с CUDA) или уберите настройки 4/8 бит.",
    },
    "train_config.quantized-vision": {
        "title": "Загрузка в {bits} бит квантует {count} линейных слоёв vision-части ({roots})",
        "detail": "bitsandbytes заменяет каждый nn.Linear, не названный в `llm_int8_skip_modules`; энкодеры "
                  "изображений и проектор будут читать страницы через {bits}-битные веса, а это точность OCR, "
                  "которую LoRA на языковой модели не вернёт.",
        "fix": "Оставьте vision-часть в полной точности: `quantization_config.llm_int8_skip_modules: [{keep}]`.",
    },
    **{f"{name}.process-died": _died() for name in ("remote_code", "model_api", "processor", "train_config",
                                                    "dataset", "memory", "batch", "step", "distributed")},
    # ---------------------------------------------------------------- distributed
    # `{flag!s:.0}` prints nothing: it only makes the alternative need that param.
    "distributed.timeout": _timeout(),
    "memory.timeout": _timeout(),
    "distributed.prerequisite": _prerequisite(),
    "train_config.nproc-key": {
        "title": "{path}: `nproc_per_node` должен быть целым числом процессов, а не {value}",
        "fix": "Напишите на верхнем уровне, например, `nproc_per_node: 2` (сколько процессов torchrun запускает на машине).",
    },
    "distributed.off": {
        "title": ("Не запущено: задан всего {nproc} процесс", "Не запущено: число процессов не задано"),
        "fix": "Передайте `--dsocr-nproc N` (ini `dsocr_nproc`) или напишите `nproc_per_node: N` на верхнем уровне конфига "
        "обучения, чтобы шаг прошёл на N процессах, как при `torchrun --nproc_per_node N`.",
    },
    "distributed.not-launched": {
        "title": "Не запущено: сначала не проходят настройки FSDP / DeepSpeed выше",
        "fix": "Исправьте их и запустите снова.",
    },
    "distributed.gpus": {
        "title": "Не запущено: процессов запрошено {nproc}, а GPU видно {have}",
        "fix": "Запустите на машине с {nproc} GPU или передайте `--dsocr-nproc {have}` (или `--dsocr-device cpu` для "
        "запуска на gloo).",
    },
    "distributed.deepspeed-not-installed": {
        "title": "DeepSpeed не установлен: его шаг не запускался (проверки выше выполнены)",
        "detail": "Шаг на N процессах прошёл под обычным DDP, `deepspeed` для него убран.",
        "fix": "Поставьте `pip install deepspeed` на машине для обучения и запустите снова — тогда выполнится сам ZeRO.",
    },
    "distributed.left-running": {
        "title": "После конца запуска остались работать процессы: {count}",
        "detail": "pid: {pids}",
        "fix": "Завершите их (`kill -9 <pid>`); это ошибка пробы, сообщите о ней.",
    },
    "distributed.ranks": {
        "title": "Рангов {world} ({backend}): каждый запустился и сделал шагов оптимизатора: {steps}",
    },
    "distributed.unused-parameters": {
        "title": "DDP останавливается на втором шаге на ранге {rank}: `Expected to have finished reduction in the prior "
        "iteration before starting a new one`",
        "fix": "Поставьте `ddp_find_unused_parameters: true` в секции training (DDP тогда ищет такие параметры на каждом "
        "шаге — это ещё один проход по графу autograd) или снимите LoRA с модулей без градиента (список ниже).",
    },
    "distributed.fsdp-cpu": {
        "title": "FSDP не запустился здесь на CPU (gloo): {error}",
        "detail": "Статические проверки FSDP выше в силе; шардированному шагу нужны GPU (NCCL).",
        "fix": "Запустите пробу с `--dsocr-nproc N` на машине с GPU.",
    },
    "distributed.rank-timeout": {
        "title": (
            "Запуск на {world} процессах не закончился за {limit:g} с: ранг {ranks} встал в {where}, остальные ждут "
            "его{waiting!s:.0}",
            "Запуск на {world} процессах не закончился за {limit:g} с: ранг {ranks} встал в {where}",
            "Запуск на {world} процессах не закончился за {limit:g} с: встали ранги {ranks}, остальные ждут их"
            "{waiting!s:.0}",
            "Запуск на {world} процессах не закончился за {limit:g} с: не закончили ранги {ranks}",
        ),
        "detail": "Последний шаг каждого ранга — в таблице; ранг, вставший, пока остальные ждут в коллективной операции "
        "(all-reduce), вешает весь запуск. Все его процессы завершены.",
        "fix": "Посмотрите лог этого ранга (запуск с `-s`); если машина просто медленная, поднимите --dsocr-timeout.",
    },
    "distributed.launch-failed": {
        "title": "torch.distributed.run не запустил ранги (код выхода {returncode})",
        "fix": "Прочитайте сообщение запускающего процесса выше; проверьте, что в этом torch есть torch.distributed.",
    },
    "distributed.rank-failed": {
        "title": ("Ранг {rank} упал: {error}", "Ранг {rank} упал: код выхода {exitcode}", "Ранг {rank} упал"),
        "fix": "Отчёт запускающего процесса выше называет ранг и его код выхода; ранг, убитый сигналом (код -9), "
        "исчерпал память или был завершён извне. Исправьте то, что он называет, и запустите снова.",
    },
    "distributed.in-sync": {
        "title": "Градиенты {count} тензоров адаптеров после синхронизации DDP и их обновлённые веса совпадают на всех "
        "{world} рангах",
    },
    "distributed.out-of-sync": {
        "terms": {"grads": "градиент после синхронизации", "weights": "вес после шагов"},
        "title": ("Ранги расходятся: {what!t} у {name} на ранге {rank} другой (относительная разница {gap})",
                  "Ранги расходятся: {what!t} у {name} есть только на части рангов (ранг {rank})"),
        "detail": "DDP складывает каждый градиент через all-reduce, поэтому на всех рангах числа должны совпадать, а они "
        "не совпадают: параметр, которым DDP не управляет, или код, меняющий веса только на одном ранге.",
        "fix": "Не меняйте параметры и requires_grad после создания Trainer; `modules_to_save` и цели LoRA должны быть "
        "одинаковыми на всех рангах.",
    },
    "distributed.all-used": {
        "title": ("Каждый адаптер получил градиент на каждом ранге; `ddp_find_unused_parameters` можно выключить (тогда "
                  "DDP не ищет неиспользуемые параметры на каждом шаге){find_unused!s:.0}",
                  "Каждый адаптер получил градиент на каждом ранге"),
    },
    "distributed.no-gradient-modules": {
        "title": "Модулей с адаптерами, не получивших градиента хотя бы на одном ранге: {count}",
        "detail": "{modules}",
        "fix": "Именно их ждал DDP: эксперты MoE, к которым на этом ранге не попал ни один токен батча, или модули вне "
        "пути loss.",
    },
    "distributed.unused-found": {
        "title": ("Модулей с адаптерами без градиента хотя бы на одном ранге: {count} (экспертов MoE без токенов: "
                  "{experts}); DDP справляется, потому что `ddp_find_unused_parameters` включён",
                  "Модулей с адаптерами без градиента хотя бы на одном ранге: {count}; DDP справляется, потому что "
                  "`ddp_find_unused_parameters` включён"),
        "detail": "{modules}. С этим флагом DDP после каждого forward обходит граф autograd, чтобы найти их: лишний проход "
        "на каждом шаге, и их градиенты не пересылаются параллельно с backward.",
        "fix": "Оставьте `ddp_find_unused_parameters: true`, пока на этих модулях есть адаптеры: маршрутизация MoE меняется "
        "от батча к батчу, и без флага запуск встанет на первом же шаге, где какой-то ранг обойдёт эксперта.",
    },
    "distributed.rank-empty": {
        "title": "Строк для обучения {rows}, рангов {world}, батч {batch}: ранги {ranks} не получают ни одного батча",
        "fix": "Нужно не меньше {want} строк для обучения, меньший `per_device_train_batch_size` или "
        "`dataloader_drop_last: false`.",
    },
    "distributed.rows-short": {
        "title": "Строк для обучения {rows}, рангов {world}, батч {batch}: одному шагу нужно {want} строк, и сэмплер "
        "повторяет строки, чтобы заполнить ранги",
        "detail": "Доля каждого ранга за эпоху — в таблице (повторов: {repeated}).",
        "fix": "Уменьшите `per_device_train_batch_size` до {fit} или добавьте строк для обучения.",
    },
    "distributed.rows": {
        "title": (
            "Строк {rows} на {world} рангах: по {per_rank} на ранг за эпоху (повторено {repeats}, чтобы выровнять ранги)",
            "Строк {rows} на {world} рангах: по {per_rank} на ранг за эпоху",
            "Строк {rows} на {world} рангах; за эпоху по рангам: {shares} (повторено {repeats}, чтобы выровнять ранги)",
            "Строк {rows} на {world} рангах; за эпоху по рангам: {shares}",
        ),
    },
    "distributed.effective-batch-large": {
        "title": "Эффективный батч {batch} на устройство x {accumulation} накопления x {world} рангов = {effective} — "
        "больше, чем строк для обучения ({rows})",
        "detail": "Каждый шаг оптимизатора повторяет строки, а эпоха — это один шаг: расписание learning rate и "
        "`num_train_epochs` насчитают намного меньше обновлений, чем на одном процессе.",
        "fix": "Уменьшите `gradient_accumulation_steps` или `per_device_train_batch_size`, чтобы эффективный батч был не "
        "больше {rows}.",
    },
    "distributed.effective-batch": {
        "title": "Эффективный батч {batch} на устройство x {accumulation} накопления x {world} рангов = {effective}: "
        "шагов оптимизатора за эпоху — {steps}",
    },
    "distributed.fsdp-not-applied": {
        "title": "FSDP здесь не применён: Trainer обернул модель в {wrapper} на {backend}",
        "detail": "accelerate включает FSDP только на GPU и других ускорителях, но не для процессов на CPU: шаг прошёл под "
        "обычным DDP. Настройки FSDP прочитаны и проверены выше.",
        "fix": "Запустите пробу с `--dsocr-nproc N` на машине с GPU, чтобы выполнить сам шардированный шаг.",
    },
    "distributed.in-sync-sharded": {
        "title": "Градиенты шардированы ({wrapper}): между рангами не сравниваются",
    },
    "distributed.engine-unreadable": {
        "title": "`{name}` не читается: {path} ({error})",
        "fix": "Задайте `{name}` словарём в секции training или путём к JSON-файлу (относительно папки, из которой "
        "запускается обучение, или папки конфига).",
    },
    "distributed.fsdp-option": {
        "title": "`fsdp: {option}` — не опция FSDP в этом transformers",
        "detail": "Известные: {known}.",
        "fix": "Используйте известные опции, например `fsdp: full_shard auto_wrap`.",
    },
    "distributed.fsdp-key": {
        "title": "Ключ `fsdp_config.{key}` не читают ни TrainingArguments, ни accelerate установленных версий: он "
        "игнорируется",
        "fix": ("Переименуйте его в `{near}`.",
                "Удалите его или сверьте имя с документацией FSDP для установленной версии accelerate."),
    },
    "distributed.deepspeed-key": {
        "title": "Ключ `{key}` конфига DeepSpeed сам DeepSpeed не читает",
        "detail": "Неизвестные ключи DeepSpeed пропускает или отвергает — в зависимости от версии.",
        "fix": ("Переименуйте его в `{near}`.", "Удалите его."),
    },
    "distributed.deepspeed-precision": {
        "title": "DeepSpeed `{name}.enabled: {deepspeed}` расходится с TrainingArguments `{name}: {arguments}`",
        "detail": "Trainer отвергает конфиг DeepSpeed, значения которого не совпадают с аргументами.",
        "fix": 'Напишите в конфиге DeepSpeed `"{name}": {{"enabled": "auto"}}`, чтобы он следовал секции training.',
    },
    "distributed.zero3": {
        "title": ("ZeRO stage 3 делит между рангами все веса, замороженные тоже, в том числе замороженную vision-часть"
                  "{vision_tower!s:.0}",
                  "ZeRO stage 3 делит между рангами все веса, замороженные тоже"),
        "detail": ("С LoRA обучаются только адаптеры, а stage 3 собирает каждый замороженный вес на каждом forward; код "
                   "модели, читающий вес вне forward своего модуля, видит пустой тензор. Vision-энкодеры DeepSeek-OCR "
                   "работают под torch.no_grad(): их веса собираются на каждом шаге впустую{vision_tower!s:.0}.",
                   "С LoRA обучаются только адаптеры, а stage 3 собирает каждый замороженный вес на каждом forward; код "
                   "модели, читающий вес вне forward своего модуля, видит пустой тензор."),
        "fix": ("Возьмите ZeRO stage 2 (с LoRA замороженная база помещается на каждую карту); со stage 3 поставьте "
                "`stage3_gather_16bit_weights_on_model_save: true`, иначе сохранённый адаптер будет пустым"
                "{no_gather!s:.0}.",
                "Возьмите ZeRO stage 2 (с LoRA замороженная база помещается на каждую карту)."),
    },
    "distributed.fsdp-and-deepspeed": {
        "title": "Заданы и `fsdp`, и `deepspeed`",
        "fix": "Выберите один движок: уберите `fsdp` или `deepspeed` из секции training.",
    },
    "distributed.fsdp-config": {
        "title": "FSDP `{fsdp}`: ключей fsdp_config {keys}, все известны установленным transformers и accelerate",
    },
    "distributed.deepspeed-config": {
        "title": ("Конфиг DeepSpeed ({path}): ключи известны, точность совпадает с аргументами, ZeRO stage {stage}",
                  "Конфиг DeepSpeed ({path}): ключи известны, точность совпадает с аргументами",
                  "Конфиг DeepSpeed (в секции training): ключи известны, точность совпадает с аргументами, ZeRO stage "
                  "{stage}",
                  "Конфиг DeepSpeed (в секции training): ключи известны, точность совпадает с аргументами"),
    },
    # ---------------------------------------------------------------- kin families
    "batch.slots-not-compared": {
        "title": "Метки и маски соответствуют раскладке модели; слоты изображений не сравнивались с признаками "
                 "vision-части модели",
        "detail": "Почему не сравнивались: {why}",
        "fix": "Менять в батче нечего; расхождение проявится на шаге обучения (`Image features and image tokens do "
               "not match`). Почему сравнение не выполнено — в evidence.",
    },
    "processor.model-mismatch": {
        "title": "У процессора {setting} = {processor_value}, а у модели {config_path} = {model_value} ({what})",
        "detail": "Процессор раскладывает слоты изображения по своей настройке, а vision-часть модели — по своему "
                  "конфигу; при разных значениях признаки и слоты не совпадут, и шаг обучения упадёт (или "
                  "заполнит слоты не теми признаками).",
        "fix": "Поставьте процессору `{setting}={model_value}` (аргументом `AutoProcessor.from_pretrained` или в "
               "его конфиге) или возьмите файлы процессора, пришедшие с весами.",
    },
    "loading.processor-needs-torchvision": {
        "title": "Процессору нужен torchvision, а он не установлен: {error}",
        "detail": "Процессор этого семейства создаёт рядом с обработчиком изображений обработчик видео, а тот "
                  "требует torchvision; без него AutoProcessor не загружается.",
        "fix": "`pip install '{use}'` под ваш torch {torch} (с того же индекса, откуда ставили torch).",
    },
    "batch.labels-on-prompt": {
        "title": "Раскладка батча не совпадает с моделью: {problem}",
        "fix": "Поставьте -100 в labels на всём промпте (bos, слоты изображения и инструкция): учится только цель и "
               "конец реплики/eos. Такие батчи собирает `dsocr_probe.builder_for(model_path)`.",
    },
    "step.causality": {
        "status": "pass",
        "title": "Токен цели не видит более поздних токенов цели (логиты перед ним не меняются)",
    },
    "step.prefix-leak": {
        "title": "Позиция цели {at} видит более поздний токен цели на позиции {later}: модель может списывать ответ, "
                 "а не читать страницу",
        "detail": (
            "Замена одного более позднего токена цели изменила логиты, предсказывающие более ранние токены цели. Loss "
            "падает, но при генерации смотреть вперёд не на что, и выученное не переносится. Forward этого семейства — "
            "prefix-LM: token_type_ids должны быть {types}.",
            "Замена одного более позднего токена цели изменила логиты, предсказывающие более ранние токены цели. Loss "
            "падает, но при генерации смотреть вперёд не на что, и выученное не переносится.",
        ),
        "fix": (
            "Передавайте цель процессору как `suffix` (token_type_ids: {types}; 1 на цели и eos): так собирает "
            "`dsocr_probe.builder_for(model_path)`.",
            "Используйте причинную маску внимания на цели (так делает сборщик dsocr_probe для этого семейства).",
        ),
    },
    "step.causality-unchecked": {
        "title": "Причинность не проверена: {why}",
    },
    "environment.processor-needs": {
        "title": "Процессору {family} нужен {dist}, а он не установлен",
        "detail": "В transformers {transformers} процессор {family} создаёт рядом с обработчиком изображений обработчик "
                  "видео, а тому нужен {dist}: без него AutoProcessor не загружается.",
        "fix": "`pip install '{use}'` под ваш torch {torch} (с того же индекса, откуда ставили torch).",
    },
    # --- memory: the weightless forecast
    "memory.prerequisite": _prerequisite(),
    "memory.no-model": {
        "title": "Нет безвесовой модели, на которой можно посчитать прогноз: {error}",
        "fix": "См. проверку Model API.",
    },
    "memory.not-run": {
        "title": "Прогноз памяти посчитать не удалось: {error}",
        "detail": "Вердикта по памяти нет: безвесовому шагу нужно, чтобы каждая операция шла на meta-устройстве.",
        "fix": "Проверка Step измерит настоящий шаг, когда веса будут на машине.",
    },
    "memory.no-batch": {
        "title": "Нет ни датасета, ни токенизатора, чтобы собрать худший батч",
        "fix": "Передайте --dsocr-data DIR или папку модели с файлами токенизатора.",
    },
    "memory.batch-refused": {
        "title": "Построитель батча отвергает худший батч: {error}",
        "fix": "См. проверку Batch.",
    },
    "memory.no-card": {
        "title": "Прогноз для батча {batch} x {length} токенов: нужно {need} (пик выделенной памяти {peak}); GPU "
                 "здесь нет, сравнивать не с чем",
        "detail": "Укажите память карты через --dsocr-gpu-memory (например, 16GiB), чтобы получить вердикт; таблица "
                  "ниже показывает распространённые карты.",
        "fix": "Передайте `--dsocr-gpu-memory 16GiB` (карта, на которой пойдёт обучение).",
    },
    "memory.fits": {
        "title": "Прогноз для батча {batch} x {length} токенов: {need} из {have} ({card}, {share}); при этой длине "
                 "помещается батч до {largest}",
    },
    "memory.tight": {
        "title": "Прогноз для батча {batch} x {length} токенов: {need} из {have} ({card}, {share}) — впритык",
        "detail": "Запас меньше 10 %: другой процесс или всплеск аллокатора оборвут обучение с out-of-memory.",
        "fix": ("Самое дешёвое изменение, при котором помещается: {change} (нужно {change_need}).",
                "Ни одно изменение по отдельности не помещает запуск на эту карту: совместите их (прогноз каждого — "
                "выше) или возьмите карту с большей памятью."),
    },
    "memory.does-not-fit": {
        "title": "Прогноз для батча {batch} x {length} токенов: {need} — больше, чем {have} ({card})",
        "detail": "Обучение упадёт с CUDA out-of-memory на первом же шаге.",
        "fix": ("Самое дешёвое изменение, при котором помещается: {change} (нужно {change_need}).",
                "Ни одно изменение по отдельности не помещает запуск на эту карту: совместите их (прогноз каждого — "
                "выше) или возьмите карту с большей памятью."),
    },
    "memory.cards": {
        "title": ("Распространённые карты: батч {batch} помещается начиная с {smallest} GiB",
                  "Распространённые карты: батч {batch} не помещается ни на одну, вплоть до {largest_card} GiB"),
    },
    "step.no-weights": {
        "title": "Не запускалась: в {path} нет весов (только конфиг и токенизатор)",
        "detail": "Статические проверки и прогноз памяти работают по одному config.json; настоящему шагу нужны веса.",
        "fix": "Скачайте файлы весов чекпойнта в эту папку, чтобы прогнать настоящий шаг.",
    },

}


def alternatives(template: Template) -> tuple[str, ...]:
    """The templates of one entry key, in the order they are tried."""
    return template if isinstance(template, tuple) else (template,)


class _Formatter(string.Formatter):
    """str.format where a None param counts as missing and ``!t`` looks the value up in a glossary."""

    def __init__(self, terms: Mapping[str, str] | None = None):
        self.terms = terms or {}

    def get_value(self, key, args, kwargs):
        value = super().get_value(key, args, kwargs)
        if value is None:
            raise KeyError(key)
        return value

    def convert_field(self, value, conversion):
        if conversion == "t":
            return self.terms.get(value, value)
        return super().convert_field(value, conversion)


def choose(template: Template, params: Mapping[str, Any], terms: Mapping[str, str] | None = None) -> tuple[int, str] | None:
    """The index and text of the first alternative that formats with ``params``, or None."""
    formatter = _Formatter(terms)
    for index, text in enumerate(alternatives(template)):
        try:
            return index, formatter.vformat(text, (), params)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue
    return None


def applies(entry: Mapping[str, Any], f: Finding) -> bool:
    wanted = entry.get("status")
    return wanted is None or f.status.value in ((wanted,) if isinstance(wanted, str) else wanted)


def template_params(f: Finding, lang: str = "ru") -> dict[str, Any]:
    """The finding's params, with the finding that stopped it (``cause_code``) translated in."""
    params = dict(f.params)
    cause_code = params.pop("cause_code", None)
    if cause_code is not None:
        inner_params = {k: v for k, v in params.items() if k != "cause"}
        inner = translate(Finding(f.status, str(cause_code), str(params.get("cause", "")), f.detail, f.fix,
                                  params=inner_params), lang)
        params.update(cause=inner["title"], cause_detail=inner["detail"], cause_fix=inner["fix"])
    return params


def choices(f: Finding, lang: str = "ru") -> dict[str, tuple[int, str]]:
    """For each text the translation replaces: which alternative was used, and the text."""
    entry = RU.get(f.code) if lang == "ru" else None
    if not entry or not applies(entry, f):
        return {}
    params = template_params(f, lang)
    out = {}
    for key in KEYS:
        if key in entry:
            chosen = choose(entry[key], params, entry.get("terms"))
            if chosen is not None:
                out[key] = chosen
    return out


def translate(f: Finding, lang: str) -> dict[str, Any]:
    text = {"title": f.title, "detail": f.detail, "fix": f.fix}
    for key, (_, translated) in choices(f, lang).items():
        text[key] = translated  # a missing param keeps the English text rather than a broken sentence
    return text

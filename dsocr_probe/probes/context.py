"""What the probes share in one run: the options, the machine's facts and the lazily loaded inputs.

Each input (target, training config, dataset, tokenizer) is loaded at most once, by the
first probe that needs it. A failure to load is kept and re-raised as the same finding for
every probe that asks, so one cause is reported once with its fix and the rest say SKIP.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..inputs import facts as facts_mod
from ..findings import Finding, InputError, ProbeStop, Status, cause_params, skip

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    model: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    allow_unpinned: bool = False
    data: Path | None = None
    train_config: Path | None = None
    report_dir: Path = Path("reports")
    lang: str = "en"
    device: str | None = None
    timeout_s: float = 0.0
    strict: bool = False
    workers: int = 0  # processes that read the dataset's images (0: one per available core, capped)
    nproc: int | None = None  # processes of the distributed probe; None: as the training config asks (else off)
    gpu_memory: int | None = None  # bytes of the card the memory probe judges against (--dsocr-gpu-memory)


def finding_of(error: InputError) -> Finding:
    """The finding a service's input error becomes: the probe layer is the only place findings are made."""
    return Finding(error.status, error.code, error.variant, params=error.params, evidence=error.evidence,
                   table=error.table, source=error.source)


def _loaded_once(fn: Callable[[Any], T]) -> Callable[[Any], T]:
    """Cache a loader's value *or* its ProbeStop, so a broken input is diagnosed once."""
    attr = "_cache_" + fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Any) -> T:
        if attr not in self.__dict__:
            try:
                self.__dict__[attr] = (fn(self), None)
            except ProbeStop as stop:
                self.__dict__[attr] = (None, stop)
            except InputError as error:
                self.__dict__[attr] = (None, ProbeStop(finding_of(error)))
        value, stop = self.__dict__[attr]
        if stop is not None:
            raise stop
        return value

    return wrapper


class ProbeContext:
    def __init__(
        self,
        options: Options,
        facts: facts_mod.EnvFacts | None = None,
        replace_facts: Callable[[facts_mod.EnvFacts], facts_mod.EnvFacts | None] | None = None,
    ):
        self.options = options
        self._facts = facts
        self._replace_facts = replace_facts
        self.display = None  # where passes over every row show their progress (the plugin's, on a terminal)

    @property
    def facts(self) -> facts_mod.EnvFacts:
        if self._facts is None:
            gathered = facts_mod.gather()
            replaced = self._replace_facts(gathered) if self._replace_facts else None
            if replaced is not None:
                replaced.injected = True
            self._facts = replaced or gathered
        return self._facts

    @_loaded_once
    def target(self):
        """The model under test (see :mod:`dsocr_probe.inputs.target`); the demo when none was given."""
        from ..inputs import target

        if self.options.model is None:
            from ..demo import target as demo

            built = demo.demo_target()
            # The demo's remote code (the v1 stand-in on old stacks) ships inside this package.
            self.options = dataclasses.replace(self.options, trust_remote_code=True)
            return built
        return target.resolve(self.options.model, self.options.revision)

    @_loaded_once
    def train_config(self):
        """The team's training config, or None when no --dsocr-train-config was given."""
        from ..inputs import trainconfig

        path = self.options.train_config
        if path is None and self.options.model is None:
            from ..demo import target as demo

            path = self.target().path / demo.TRAIN_CONFIG  # the demo brings a config that fits its data
        if path is None:
            return None
        return trainconfig.load(path)

    @_loaded_once
    def dataset(self):
        """The dataset splits (--dsocr-data, the config's data section, or the demo's data)."""
        from ..inputs import dataset

        folder = self.options.data
        cfg = self.train_config()
        if folder is None and cfg is not None:
            if cfg.data_dir is None and cfg.splits():
                return dataset.load_splits(cfg.splits(), root=cfg.path.parent)
            folder = cfg.data_dir
        if folder is None and self.options.model is None:
            folder = self.target().dataset  # only the built-in demo brings data of its own
        if folder is None:
            return None
        return dataset.load(Path(folder))

    @_loaded_once
    def skeleton(self):
        """The model class and a weightless (meta-device) instance; see :mod:`dsocr_probe.model.skeleton`."""
        from ..model import skeleton

        return skeleton.build(self.target(), self.options)

    @_loaded_once
    def tokenizer(self):
        from ..model import loading

        return loading.load_tokenizer(self)

    def image_facts(self, path: Path) -> Any:
        """:func:`dsocr_probe.inputs.images.inspect_image` of one file, read once per run: the dataset probe's
        verdict on a row's image, which the batch and step probes follow."""
        from ..inputs import images

        cache = self.__dict__.setdefault("_image_facts", {})
        key = str(path)
        if key not in cache:
            cache[key] = images.inspect_image(path)
        return cache[key]

    def inspect_images(self, paths) -> None:
        """:meth:`image_facts` of many files in one pass, across cores when that pays."""
        from ..inputs import images

        cache = self.__dict__.setdefault("_image_facts", {})
        self._fill(cache, paths, images.inspect_image, "images decoded")

    def image_sizes(self, paths) -> dict[str, Any]:
        """Each file's page size as the builders see it, or why it has none (by ``str(path)``): from the
        decoded image where it was already inspected, else from its header alone (no pixels decoded)."""
        from ..inputs import images

        facts = self.__dict__.get("_image_facts", {})
        sizes = self.__dict__.setdefault("_image_sizes", {})
        keys = list(dict.fromkeys(map(str, paths)))
        for key in keys:
            if key in facts and key not in sizes:
                info = facts[key]
                sizes[key] = info[1] if isinstance(info, tuple) else info  # a usable page, or why it is refused
        self._fill(sizes, keys, images.read_size, "image headers read")
        return {key: sizes[key] for key in keys}

    def _fill(self, cache: dict, paths, work, label: str) -> None:
        from ..inputs import filepass, images, stopping
        from ..inputs.progress import Progress

        unique: dict[str, Any] = {}
        for path in paths:
            unique.setdefault(str(path), path)  # the rows' own Path objects: no copy per row
        todo = [path if isinstance(path, Path) else Path(path) for key, path in unique.items() if key not in cache]
        del unique
        if not todo:
            return
        progress = Progress(label, len(todo), self.display)
        with progress, stopping.current().hooked(progress.close):  # a stopped probe leaves no progress line
            for path, verdict in filepass.run(work, todo, workers=self.options.workers, progress=progress,
                                              initializer=images.use_decoder_limits,
                                              initargs=images.decoder_limits()):
                cache[str(path)] = verdict

    def usable_rows(self, rows) -> list:
        """The rows whose image the dataset probe accepts."""
        rows = list(rows)
        self.inspect_images(r.image for r in rows)
        return [r for r in rows if isinstance(self.image_facts(r.image), tuple)]

    def loaded_target(self):
        """The target if a probe already resolved it, else None (never builds or resolves one)."""
        value, _ = self.__dict__.get("_cache_target", (None, None))
        return value

    def unless_broken(self, loader: Callable[[], T]) -> T | None:
        """The loader's value, or None when that input is broken (the probe that owns it reports why)."""
        try:
            return loader()
        except (ProbeStop, InputError):
            return None

    def require(self, loader: Callable[[], T | None], what: str) -> T:
        """The loader's value, or stop the probe with SKIP naming what was missing (``input.no-<what>``)."""
        value = loader()
        if value is None:
            raise ProbeStop(skip(f"input.no-{what}"))
        return value

    def needs(self, loader: Callable[[], T], probe: str) -> T:
        """Like calling the loader, but a failure already reported elsewhere becomes a SKIP here (the
        loader may be a service that raises InputError as well as a cached loader)."""
        try:
            return loader()
        except (ProbeStop, InputError) as stop:
            f = stop.finding if isinstance(stop, ProbeStop) else finding_of(stop)
            if f.status is Status.SKIP:
                raise ProbeStop(f) from None
            raise ProbeStop(skip(f"{probe}.prerequisite", params=cause_params(f))) from None

"""The memory probe: the weightless forecast of one training step against the card."""

from ..catalog import N_, Text, define

define("memory.no-model", Text(N_("No weightless model to run the forecast on: %(error)s"),
                               fix=N_("See the model API probe.")))

define("memory.not-run", Text(
    N_("The memory forecast could not run: %(error)s"),
    detail=N_("No verdict on memory: the weightless step needs every operation on the meta device."),
    fix=N_("The step probe measures the real step once the weights are here."),
))

define("memory.no-batch", Text(N_("No dataset and no tokenizer to make the worst batch from"),
                               fix=N_("Pass --dsocr-data DIR, or a model folder with its tokenizer files.")))

define("memory.batch-refused", Text(N_("The batch builder refuses the worst batch: %(error)s"),
                                    fix=N_("See the batch probe.")))

define("memory.no-card", Text(
    N_("Forecast for batch %(batch)d x %(length)d tokens: %(need)s needed (%(peak)s peak allocated); no GPU here to "
       "judge it against"),
    detail=N_("Give the card's memory with --dsocr-gpu-memory (e.g. 16GiB) for a verdict; the card table below shows "
              "common cards."),
    fix=N_("Pass `--dsocr-gpu-memory 16GiB` (the card the run will use)."),
))

define("memory.fits", Text(N_("Forecast for batch %(batch)d x %(length)d tokens: %(need)s of %(have)s (%(card)s, "
                              "%(share)s); up to batch %(largest)d fits at this length")))

_CHANGE = N_("Cheapest change that fits: %(change)s (%(change_need)s needed).")
_NO_CHANGE = N_("No single change fits this card: combine them (each one's forecast is listed above) or use a card "
                "with more memory.")
_TIGHT = N_("Forecast for batch %(batch)d x %(length)d tokens: %(need)s of %(have)s (%(card)s, %(share)s): tight")
_TIGHT_DETAIL = N_("Less than 10 %% headroom: another process or an allocator spike can end the run with "
                   "out-of-memory.")
define("memory.tight", {
    "change": Text(_TIGHT, detail=_TIGHT_DETAIL, fix=_CHANGE),
    "no-change": Text(_TIGHT, detail=_TIGHT_DETAIL, fix=_NO_CHANGE),
})

_TOO_BIG = N_("Forecast for batch %(batch)d x %(length)d tokens: %(need)s, more than %(have)s (%(card)s)")
_TOO_BIG_DETAIL = N_("The run would end with CUDA out-of-memory in its first step.")
define("memory.does-not-fit", {
    "change": Text(_TOO_BIG, detail=_TOO_BIG_DETAIL, fix=_CHANGE),
    "no-change": Text(_TOO_BIG, detail=_TOO_BIG_DETAIL, fix=_NO_CHANGE),
})

define("memory.cards", {
    "fits-from": Text(N_("Common cards: batch %(batch)d fits from %(smallest)d GiB")),
    "fits-none": Text(N_("Common cards: batch %(batch)d fits none up to %(largest_card)d GiB")),
})

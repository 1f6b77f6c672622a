"""The remote-code probe: the code trust_remote_code would run, its imports, its risky calls, its pin."""

from __future__ import annotations

from ..catalog import NP_, N_, Text, define

define("remote_code.bad-auto-map", {
    variant: Text(title, fix=N_("Restore the file from the checkpoint; an auto_map value is 'module.Class' (or a "
                                "[slow, fast] pair for tokenizers)."))
    for variant, title in (
        ("unreadable", N_("auto_map cannot be read: %(file)s: %(error)s")),
        ("not-a-mapping", N_("auto_map cannot be read: %(file)s: auto_map is a %(found)s, not a mapping")),
        ("not-a-reference", N_("auto_map cannot be read: %(file)s: auto_map[%(key)s] = %(found)s is not "
                               "'module.Class'")),
    )
})

define("remote_code.none", Text(N_("No remote code runs: the checkpoint maps no code of its own (no auto_map)")))

define("remote_code.modules", {
    "trusted": Text(NP_("Remote code that runs on load (%(count)d file): %(listed)s",
                        "Remote code that runs on load (%(count)d files): %(listed)s", "count")),
    "native": Text(
        N_("transformers loads `%(model_type)s` natively; the checkpoint's own code (%(listed)s) runs only if trusted"),
        detail=N_("With trust_remote_code=True, transformers prefers the auto_map classes over its own; the findings "
                  "below are about that code."),
    ),
    "untrusted": Text(
        NP_("Loading this model needs trust_remote_code, which would execute %(count)d file: %(listed)s",
            "Loading this model needs trust_remote_code, which would execute %(count)d files: %(listed)s", "count"),
        detail=N_("Nothing was imported: the files were read as text. The findings below say what they would do."),
        fix=N_("Review the listed files, then re-run with `--dsocr-trust-remote-code --dsocr-revision <pin>`: the "
               "checkpoint's commit (a hub snapshot or a clean git checkout), or `%(digest)s`, the digest of these "
               "files."),
    ),
})

define("remote_code.missing-module", Text(
    N_("Remote code refers to files that are not in the checkpoint: %(names)s"),
    detail=N_("Loading stops with an import error at the first of them."),
    fix=N_("Restore %(names)s from the same checkpoint commit (e.g. `%(download)s <repo> %(file_args)s --revision "
           "<commit>`), or remove the reference."),
))

define("remote_code.external-module", Text(
    N_("%(entry)s loads code from another repository (%(repo)s) that was not scanned"),
    fix=N_("Scan that repository at a pinned commit (`--dsocr-model %(repo)s --dsocr-revision <commit>`), or copy "
           "%(file)s into this checkpoint and set auto_map to `%(local_reference)s`."),
))

define("remote_code.unreadable", Text(
    N_("%(file)s cannot be parsed, so it was not checked: %(error)s"),
    detail=N_("Importing it would fail the same way."),
    fix=N_("Restore %(file)s from the checkpoint (it is damaged or written for another Python version)."),
))

# ---------------------------------------------------------------- imports

_MISSING_SYMBOL = N_("The remote code imports names that transformers %(transformers)s does not have: %(short)s")
define("remote_code.missing-symbol", {
    "": Text(_MISSING_SYMBOL, detail=N_("Importing %(file)s stops at line %(line)d: %(reason)s"),
             fix="%(advice)s"),
    "replayed": Text(_MISSING_SYMBOL, detail=N_("Importing %(file)s stops at line %(line)d: %(reason)s (replayed: "
                                                "transformers %(transformers)s judged by the version facts)"),
                     fix="%(advice)s"),
})

define("remote_code.optional-symbol", Text(
    N_("Names missing from transformers %(transformers)s on optional paths: %(short)s"),
    detail=N_("These imports sit inside try/except ImportError, an `if is_..._available()` check, or a function: "
              "loading works, the code path that needs them does not."),
    fix="%(advice)s",  # worded by the site: which release to install
))

define("remote_code.transformers-broken", Text(
    N_("transformers %(transformers)s has %(short)s, but importing it fails here"),
    detail="%(reason)s",  # the import error
    fix=N_("Repair the installation: `python -c \"import %(module)s\"` shows the error; usually torch and "
           "transformers do not match (see the environment probe's findings)."),
))

define("remote_code.transformers-imports", {
    "nothing": Text(N_("The remote code imports nothing from transformers")),
    "all": Text(NP_("The %(count)d name the remote code imports from transformers exists in %(where)s",
                    "All %(count)d names the remote code imports from transformers exist in %(where)s", "count")),
    "some-unchecked": Text(NP_(
        "%(checked)d of the %(count)d name the remote code imports from transformers is in %(where)s; "
        "%(unchecked)d not checked",
        "%(checked)d of %(count)d names the remote code imports from transformers exist in %(where)s; "
        "%(unchecked)d not checked", "count")),
})

define("remote_code.missing-package", Text(
    N_("The remote code needs packages that are not installed: %(names)s"),
    detail=N_("transformers checks every import of a remote-code file before loading it and refuses with 'This "
              "modeling file requires the following packages that were not found in your environment'."),
    fix=N_("`pip install %(pip_args)s`"),
))

define("remote_code.optional-package", Text(
    N_("Optional packages of the remote code are not installed: %(names)s"),
    detail=N_("Their imports are guarded (try/except ImportError or an `if is_..._available()` check): the code "
              "runs without them, on its fallback path."),
    fix=N_("Optional: `pip install %(pip_args)s` to use the code path that needs them."),
))

define("remote_code.packages", {
    "installed": Text(N_("Every package the remote code imports is installed: %(names)s")),
    "stdlib-only": Text(N_("The remote code imports only the standard library and transformers")),
})

# ---------------------------------------------------------------- hazards

define("remote_code.no-hazards", Text(NP_(
    "No network, process, eval, unpickling, file-write, obfuscation or hard-coded CUDA calls in %(count)d file",
    "No network, process, eval, unpickling, file-write, obfuscation or hard-coded CUDA calls in %(count)d files",
    "count")))

_ON_IMPORT = N_("Runs as soon as from_pretrained imports the file: %(on_import)s.")


def _hazard(title: str, title_more: str, fix: str, fix_more: str,
            details: dict[str, str] | None = None) -> dict[str, Text]:
    """The variants of one hazard kind: "<what>: `call` at file:line" with the other places counted ("more")
    and the fix pointing at the table; a detail per variant of ``details`` (by default: whether any place
    runs on import)."""
    details = details if details is not None else {"": "", "on-import": _ON_IMPORT}
    return {
        "-".join(p for p in (count, name) if p): Text(t, detail=detail, fix=f)
        for count, t, f in (("one", title, fix), ("more", title_more, fix_more))
        for name, detail in details.items()
    }


define("remote_code.network", _hazard(
    N_("Network access: `%(call)s` at %(where)s"),
    N_("Network access: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Remove the network call `%(call)s` at %(where)s: loading and training read local files only (pass local "
       "paths or PIL images instead of URLs)."),
    N_("Remove the network call `%(call)s` at %(where)s: loading and training read local files only (pass local "
       "paths or PIL images instead of URLs). The table lists every place."),
))
define("remote_code.process", _hazard(
    N_("Starts other programs: `%(call)s` at %(where)s"),
    N_("Starts other programs: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Remove `%(call)s` at %(where)s, or do not trust this code: a model has no reason to start programs."),
    N_("Remove `%(call)s` at %(where)s, or do not trust this code: a model has no reason to start programs. The "
       "table lists every place."),
))
define("remote_code.eval", _hazard(
    N_("Runs code built from strings: `%(call)s` at %(where)s"),
    N_("Runs code built from strings: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Replace `%(call)s(...)` at %(where)s with plain code (`ast.literal_eval` for literals), or do not trust "
       "this code."),
    N_("Replace `%(call)s(...)` at %(where)s with plain code (`ast.literal_eval` for literals), or do not trust "
       "this code. The table lists every place."),
))
define("remote_code.pickle", _hazard(
    N_("Unpickles data (unpickling can run any code): `%(call)s` at %(where)s"),
    N_("Unpickles data (unpickling can run any code): `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Replace `%(call)s` at %(where)s with safetensors or `torch.load(..., weights_only=True)`."),
    N_("Replace `%(call)s` at %(where)s with safetensors or `torch.load(..., weights_only=True)`. The table lists "
       "every place."),
))
define("remote_code.torch-load", _hazard(
    N_("torch.load without weights_only=True: `%(call)s` at %(where)s"),
    N_("torch.load without weights_only=True: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Write `torch.load(..., weights_only=True)` at %(where)s."),
    N_("Write `torch.load(..., weights_only=True)` at %(where)s. The table lists every place."),
    details={
        "safe": N_("torch %(torch)s defaults to weights_only=True, but an older torch unpickles arbitrary code here."),
        "unsafe": N_("torch %(torch)s unpickles arbitrary code here (weights_only defaults to True only from 2.6)."),
        "on-import-safe": N_("Runs as soon as from_pretrained imports the file: %(on_import)s. torch %(torch)s "
                             "defaults to weights_only=True, but an older torch unpickles arbitrary code here."),
        "on-import-unsafe": N_("Runs as soon as from_pretrained imports the file: %(on_import)s. torch %(torch)s "
                               "unpickles arbitrary code here (weights_only defaults to True only from 2.6)."),
    },
))
define("remote_code.file-write", _hazard(
    N_("Writes or deletes files outside the model cache: `%(call)s` at %(where)s"),
    N_("Writes or deletes files outside the model cache: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Remove `%(call)s` at %(where)s, or make it write only under a folder the caller passes in."),
    N_("Remove `%(call)s` at %(where)s, or make it write only under a folder the caller passes in. The table lists "
       "every place."),
))
define("remote_code.obfuscated", _hazard(
    N_("Obfuscated code: `%(call)s` at %(where)s"),
    N_("Obfuscated code: `%(call)s` at %(where)s (+%(more)d more)"),
    N_("Do not trust this code until `%(call)s` at %(where)s is decoded and reviewed; model code has no reason to "
       "hide text."),
    N_("Do not trust this code until `%(call)s` at %(where)s is decoded and reviewed; model code has no reason to "
       "hide text. The table lists every place."),
))
define("remote_code.cuda", _hazard(
    N_("Hard-coded CUDA device (the model cannot run on CPU or other devices): `%(call)s` at %(where)s"),
    N_("Hard-coded CUDA device (the model cannot run on CPU or other devices): `%(call)s` at %(where)s "
       "(+%(more)d more)"),
    N_("Replace `%(call)s` at %(where)s with `.to(device)` (e.g. `.to(self.device)` or `.to(input_ids.device)`)."),
    N_("Replace `%(call)s` at %(where)s with `.to(device)` (e.g. `.to(self.device)` or `.to(input_ids.device)`). "
       "The table lists every place."),
))

_OFF_PATH_ROOTS = N_("None of them runs on import, in from_pretrained or in a training step; they run only when "
                     "%(roots)s is called.")
_OFF_PATH_GUARD = N_("%(guarded)s (`%(guard_call)s`) is on the loading or training path (%(guard_path)s), but only "
                     "under `%(guard)s`, and no call on that path sets it.")
_OFF_PATH_FIX_ROOTS = N_("Training can start. Before calling %(roots)s yourself, review the listed lines (eval of "
                         "generated text runs whatever the model writes; `ast.literal_eval` parses literals safely).")
_OFF_PATH_FIX = N_("Training can start. Review the listed lines before passing that argument yourself.")
define("remote_code.off-path", {
    "-".join(p for p in (count, name) if p): Text(title, detail=detail, fix=fix)
    for count, title in (
        ("one", N_("Risky calls outside loading and training: `%(call)s` in %(path)s")),
        ("more", N_("Risky calls outside loading and training: `%(call)s` in %(path)s (+%(more)d more)")),
    )
    for name, detail, fix in (
        ("", "", _OFF_PATH_FIX),
        ("roots", _OFF_PATH_ROOTS, _OFF_PATH_FIX_ROOTS),
        ("guard", _OFF_PATH_GUARD, _OFF_PATH_FIX),
        ("roots-guard", N_("None of them runs on import, in from_pretrained or in a training step; they run only "
                           "when %(roots)s is called. %(guarded)s (`%(guard_call)s`) is on the loading or training "
                           "path (%(guard_path)s), but only under `%(guard)s`, and no call on that path sets it."),
         _OFF_PATH_FIX_ROOTS),
    )
})

# ---------------------------------------------------------------- trust

define("remote_code.pinned", {
    "content": Text(N_("Trusted remote code is pinned by content: %(digest)s")),
    "snapshot": Text(N_("Trusted remote code is pinned to commit %(commit)s (hub snapshot, checked)")),
    "git": Text(N_("Trusted remote code is pinned to commit %(commit)s (git checkout, checked)")),
    "demo": Text(N_("Trusted remote code is the built-in demo's own")),
})

_UNPINNED = N_("Remote code is trusted without a verified pin (revision: %(revision_shown)s)")
_UNPINNED_ACCEPTED = N_("Remote code is trusted without a verified pin (revision: %(revision_shown)s) — accepted "
                        "because --dsocr-allow-unpinned was given")
_UNPINNED_DETAIL = N_("%(reason)s Without a verified pin the next download or edit can bring different code, which runs "
                      "with your permissions. The sha256 of every file scanned here is in the evidence.")
_PIN_COMMIT = N_("Pin the commit scanned here: `--dsocr-revision %(commit)s`, and `from_pretrained(..., "
                 "revision=\"%(commit)s\", trust_remote_code=True)` in the training script.")
_PIN_DIGEST = N_("Pin the files scanned here by content: `--dsocr-revision %(digest)s` (`model.revision` in the "
                 "training config); any change to them changes the digest.")
define("remote_code.unpinned", {
    "refused-commit": Text(_UNPINNED, detail=_UNPINNED_DETAIL, fix=_PIN_COMMIT),
    "refused-digest": Text(_UNPINNED, detail=_UNPINNED_DETAIL, fix=_PIN_DIGEST),
    "accepted-commit": Text(_UNPINNED_ACCEPTED, detail=_UNPINNED_DETAIL, fix=_PIN_COMMIT),
    "accepted-digest": Text(_UNPINNED_ACCEPTED, detail=_UNPINNED_DETAIL, fix=_PIN_DIGEST),
    # Loading the config or the model refuses to import it (inputs.trust).
    "not-imported": Text(
        N_("Remote code is not imported: the revision does not pin it verifiably"),
        fix=N_("Re-run with --dsocr-revision %(pin)s (the digest of the files read here), or --dsocr-allow-unpinned "
               "to accept the risk."),
    ),
})

define("remote_code.untrusted", Text(
    N_("Remote code is not imported without --dsocr-trust-remote-code"),
    fix=N_("Read the remote-code findings, then re-run with --dsocr-trust-remote-code --dsocr-revision <commit>."),
))

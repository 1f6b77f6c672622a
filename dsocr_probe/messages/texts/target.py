"""The model under test: a folder or a hub id in the local cache, and its config.json."""

from __future__ import annotations

from ..catalog import N_, Text, define

define("target.windows-path", Text(
    N_("`%(model)s` is a Windows path, and this machine runs %(system)s"),
    detail=N_("Drive letters and backslash paths mean nothing here: the folder is looked for as a relative path and "
              "not found."),
    fix=N_("Pass the folder as this machine sees it (under WSL `C:\\models\\x` is `/mnt/c/models/x`), or copy the "
           "model folder here."),
))

define("target.not-a-folder", Text(
    N_("`%(model)s` is not a model folder"),
    fix=N_("Pass a folder that holds config.json, or a hub id like `deepseek-ai/DeepSeek-OCR`."),
))

define("target.missing-folder", Text(
    N_("The model folder `%(model)s` does not exist (%(absolute)s)"),
    detail=N_("Relative paths are read from the folder pytest runs in: %(cwd)s."),
    fix=N_("Check the path for typos (`ls` its parent), or pass a hub id like `deepseek-ai/DeepSeek-OCR` already in "
           "the local cache."),
))

_NOT_CACHED = N_("`%(model)s` is not in the local Hugging Face cache")
define("target.not-cached", {
    "": Text(_NOT_CACHED, detail="%(error)s", fix=N_(  # detail: huggingface_hub's error, data
        "Probes never download. Fetch it once: `%(download)s %(model)s`, or pass the local folder with "
        "--dsocr-model.")),
    "revision": Text(_NOT_CACHED, detail="%(error)s", fix=N_(
        "Probes never download. Fetch it once: `%(download)s %(model)s --revision %(revision)s`, or pass the local "
        "folder with --dsocr-model.")),
})

define("target.revision-mismatch", Text(
    N_("--dsocr-revision %(revision)s does not match the snapshot folder, which holds commit %(commit)s"),
    fix=N_("Pass the snapshot of commit %(revision)s, or `--dsocr-revision %(commit)s` after reviewing its code."),
))

define("target.no-config", Text(
    N_("%(folder)s has no config.json"),
    fix=N_("Point --dsocr-model at the model folder itself (the one with config.json and the weights)."),
))

define("target.bad-config", Text(
    N_("%(path)s is not valid JSON: %(error)s"),
    fix=N_("Restore config.json from the checkpoint."),
))

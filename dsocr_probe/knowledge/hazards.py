"""What remote code has no business doing, as data: the kinds of hazard, the calls that are each kind, and
how much each weighs. :mod:`dsocr_probe.codescan` finds them in the code; the remote-code probe weighs them.
"""

from __future__ import annotations

from ..findings import Status

# Hazard kinds, in the order the report lists them.
NETWORK, PROCESS, EVAL, PICKLE, TORCH_LOAD, FILE_WRITE, OBFUSCATED, CUDA = (
    "network", "process", "eval", "pickle", "torch-load", "file-write", "obfuscated", "cuda",
)
HAZARD_KINDS = (NETWORK, PROCESS, EVAL, PICKLE, TORCH_LOAD, FILE_WRITE, OBFUSCATED, CUDA)

# (at import: the call sits at module level and runs when from_pretrained imports the file,
#  when called: inside a function that loading or a training step reaches)
SEVERITY: dict[str, tuple[Status, Status]] = {
    NETWORK: (Status.FAIL, Status.FAIL),
    PROCESS: (Status.FAIL, Status.FAIL),
    EVAL: (Status.FAIL, Status.FAIL),
    PICKLE: (Status.FAIL, Status.FAIL),
    TORCH_LOAD: (Status.FAIL, Status.FAIL),
    FILE_WRITE: (Status.FAIL, Status.FAIL),
    OBFUSCATED: (Status.FAIL, Status.FAIL),
    CUDA: (Status.WARN, Status.WARN),  # the model still trains on a CUDA machine
}

# torch.load reads weights only, no pickled code, by default from this release on (PyTorch 2.6 notes).
TORCH_SAFE_LOAD_SINCE = "2.6"

# Calls (by resolved dotted name) and the hazard they are. A key ending in "." matches every
# call under that module; "*" matches any suffix of a function name (os.exec*, os.spawn*).
CALL_RULES: tuple[tuple[str, str], ...] = (
    ("requests.", NETWORK), ("urllib.request.", NETWORK), ("urllib3.", NETWORK), ("http.client.", NETWORK),
    ("socket.", NETWORK), ("httpx.", NETWORK), ("aiohttp.", NETWORK), ("ftplib.", NETWORK),
    ("smtplib.", NETWORK), ("telnetlib.", NETWORK), ("huggingface_hub.", NETWORK), ("torch.hub.", NETWORK),
    ("wget.", NETWORK), ("gdown.", NETWORK), ("paramiko.", NETWORK),
    ("subprocess.", PROCESS), ("os.system", PROCESS), ("os.popen", PROCESS), ("os.exec*", PROCESS),
    ("os.spawn*", PROCESS), ("os.posix_spawn*", PROCESS), ("os.fork", PROCESS), ("os.forkpty", PROCESS),
    ("os.startfile", PROCESS), ("pty.spawn", PROCESS), ("asyncio.create_subprocess_*", PROCESS),
    ("eval", EVAL), ("exec", EVAL), ("compile", EVAL),
    ("builtins.eval", EVAL), ("builtins.exec", EVAL), ("builtins.compile", EVAL),
    ("pickle.load", PICKLE), ("pickle.loads", PICKLE), ("pickle.Unpickler", PICKLE),
    ("_pickle.load", PICKLE), ("_pickle.loads", PICKLE), ("cPickle.load", PICKLE), ("cPickle.loads", PICKLE),
    ("dill.load", PICKLE), ("dill.loads", PICKLE), ("cloudpickle.load", PICKLE), ("cloudpickle.loads", PICKLE),
    ("joblib.load", PICKLE), ("marshal.load", PICKLE), ("marshal.loads", PICKLE), ("shelve.open", PICKLE),
    ("shutil.rmtree", FILE_WRITE),
)
# Calls that decode a literal into something else: fine on data, a disguise on a literal.
DECODERS = (
    "base64.*decode*", "codecs.decode", "binascii.unhexlify", "binascii.a2b_*", "bytes.fromhex",
    "zlib.decompress", "lzma.decompress", "bz2.decompress", "gzip.decompress",
)
# Modules whose attributes fetched by a computed name hide which function is called.
SENSITIVE_MODULES = {"builtins", "__builtins__", "os", "posix", "nt", "subprocess", "sys", "importlib", "socket",
                     "pickle", "shutil"}
OPENERS = {"open", "io.open", "builtins.open", "codecs.open"}
PATH_WRITERS = {"write_text", "write_bytes", "touch", "unlink", "rmdir", "rename", "symlink_to", "mkdir"}
FILE_CHANGERS = {"os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.replace", "os.makedirs",
                 "os.mkdir", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move"}
# Calls whose result lies outside the model cache: the user's home, the temp folder, the environment.
HOME_CALLS = {"os.path.expanduser", "pathlib.Path.home", "Path.home", "os.getenv", "os.environ.get",
              "tempfile.gettempdir"}
# Calls whose result is a path rooted where their first argument is.
PATH_WRAPPERS = {"pathlib.Path", "Path", "pathlib.PurePath", "os.path.abspath", "os.path.normpath", "os.fspath", "str"}

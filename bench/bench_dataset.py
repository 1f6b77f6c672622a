"""What the dataset pass costs: the dataset probe (every row's image read, checked and fully decoded)
against a bare PIL decode loop over all cores, on the same files, side by side.

- probe: ``run_probe`` of the dataset probe on a fresh context, as ``pytest --dsocr-probe -k dataset``
  runs it: metadata read, every file's type checked, every image decoded (in worker processes when that
  pays, see ``dsocr_probe/filepass.py``), hashed and judged, and the findings built;
- floor: ``multiprocessing.Pool(<cores>)`` mapping ``Image.open(path).load()`` over the same files (pure
  decoding: no checks, no hashing, no verdicts).

The pages are generated once (``--dir`` keeps them between runs): text pages of 800-1800 x 1130-2550 px,
JPEG and PNG, RGB and grayscale. Rounds alternate, so drift on a shared machine hits both alike; the
medians are compared. Then the header-only pass (``ctx.image_sizes``: sizes without decoding), and the
peak memory of the pass at 2 000 and 20 000 rows (small pages, worker processes forced), each in a fresh
process. Last line: ``ratio to the decode floor: N.NNx`` (probe images/s over floor images/s), goal >= 0.8.

    python bench/bench_dataset.py [--n 2000] [--dir DIR] [--rounds 3] [--workers 0] [--no-memory] [--crossover]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("the of and to in is that for it as with was on be by at this from or an which are were data page model "
         "invoice total meeting notes budget review friday lecture optics light boundary letter shelf").split()


# ---------------------------------------------------------------- pages


_LINES: list = []


def _line_strips(rng: random.Random):
    """Rendered lines of text, made once per process and pasted onto pages in new orders."""
    from PIL import Image, ImageDraw, ImageFont

    if not _LINES:
        try:
            font = ImageFont.load_default(size=24)
        except TypeError:  # Pillow without FreeType's default font
            font = ImageFont.load_default()
        for _ in range(60):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 13)))
            strip = Image.new("L", (1700, 34), 255)
            ImageDraw.Draw(strip).text((0, 2), text, fill=20, font=font)
            _LINES.append(strip)
    return _LINES


def _make_page(job: tuple[int, str]) -> str:
    from PIL import Image

    i, folder = job
    rng = random.Random(i)
    width = rng.randint(800, 1800)
    height = int(width * 1.414)
    grey = rng.random() < 0.25
    page = Image.new("L", (width, height), 255)
    strips = _line_strips(random.Random(0))
    y = rng.randint(40, 90)
    while y < height - 80:
        page.paste(rng.choice(strips), (rng.randint(50, 90), y))
        y += rng.randint(34, 46)
    page.putpixel((rng.randrange(width), rng.randrange(height)), rng.randrange(200))  # no two pages alike
    if not grey:
        page = Image.merge("RGB", (page, page, page.point(lambda v: min(255, v + 8))))
    if rng.random() < 0.3:
        name = f"{i:06d}.png"
        page.save(Path(folder) / name, "PNG", compress_level=3)
    else:
        name = f"{i:06d}.jpg"
        page.save(Path(folder) / name, "JPEG", quality=88)
    return name


def _make_tiny(job: tuple[int, str]) -> str:
    from PIL import Image

    i, folder = job
    name = f"{i:06d}.png"
    Image.new("L", (32 + i % 48, 32 + i // 48 % 48), i % 251).save(Path(folder) / name, "PNG")  # all distinct
    return name


def write_dataset(root: Path, n: int, make=_make_page) -> Path:
    """``root/train``: ``n`` pages and their metadata.json (kept when a previous run wrote the same)."""
    train = root / "train"
    meta = train / "metadata.json"
    if meta.is_file() and len(json.loads(meta.read_text(encoding="utf-8"))) == n:
        return root
    images = train / "images"
    images.mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool() as pool:
        names = pool.map(make, [(i, str(images)) for i in range(n)], chunksize=8)
    rows = [{"image_path": f"images/{name}", "text": f"page {i}: " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8))}
            for i, name in enumerate(names)]
    meta.write_text(json.dumps(rows), encoding="utf-8")
    return root


def image_paths(root: Path) -> list[Path]:
    rows = json.loads((root / "train" / "metadata.json").read_text(encoding="utf-8"))
    return [root / "train" / row["image_path"] for row in rows]


# ---------------------------------------------------------------- the two passes


def _decode(path: str) -> None:
    from PIL import Image

    with Image.open(path) as im:
        im.load()


def floor_pass(paths: list[Path], cores: int) -> float:
    start = time.perf_counter()
    with multiprocessing.Pool(cores) as pool:
        for _ in pool.imap_unordered(_decode, map(str, paths), chunksize=8):
            pass
    return time.perf_counter() - start


def probe_pass(root: Path, workers: int) -> tuple[float, dict]:
    from dsocr_probe.probes.context import Options, ProbeContext
    from dsocr_probe.plugin import run_probe
    from dsocr_probe.probes import PROBES

    spec = next(s for s in PROBES if s.name == "dataset")
    ctx = ProbeContext(Options(data=root, train_config=_config(root), workers=workers))
    start = time.perf_counter()
    result = run_probe(spec, ctx)
    elapsed = time.perf_counter() - start
    return elapsed, {f.code: f.status.value for f in result.findings}


def _config(root: Path) -> Path:
    """A training config without max_length: the pass over the images alone, no tokenizer (and, unlike
    no config at all, not the built-in demo's)."""
    path = root / "training.yaml"
    path.write_text("training:\n  per_device_train_batch_size: 1\n", encoding="utf-8")
    return path


def header_pass(root: Path, workers: int) -> float:
    from dsocr_probe.probes.context import Options, ProbeContext

    ctx = ProbeContext(Options(data=root, train_config=_config(root), workers=workers))
    rows = ctx.dataset().train.rows
    start = time.perf_counter()
    sizes = ctx.image_sizes(row.image for row in rows)
    elapsed = time.perf_counter() - start
    assert not any(isinstance(s, str) for s in sizes.values()), "a generated page has no size"
    return elapsed


# ---------------------------------------------------------------- memory


def _peak_rss_child(root: Path, workers: int) -> None:
    """Run in a fresh process: the dataset probe with worker processes forced, then peak RSS as JSON.
    The workers' peak is sampled (psutil): their ru_maxrss would count the parent's pages they were forked with."""
    import threading

    from dsocr_probe.inputs import filepass

    try:
        import psutil
    except ImportError:
        psutil = None
    filepass.DECIDE_AFTER_S = 0
    filepass.POOL_PAYS_S = 0
    peak, done = [0], threading.Event()

    def sample() -> None:
        if psutil is None:
            return
        me = psutil.Process()
        while not done.wait(0.05):
            for child in me.children():
                try:
                    if "spawn_main" in " ".join(child.cmdline()):  # a worker, not multiprocessing's resource tracker
                        peak[0] = max(peak[0], child.memory_info().rss)
                except psutil.Error:
                    pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    elapsed, found = probe_pass(root, workers)
    done.set()
    sampler.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(json.dumps({"parent": own, "worker": peak[0], "s": elapsed, "codes": found}))


def peak_rss(root: Path, workers: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(root), "--workers", str(workers)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="pages to generate and read")
    parser.add_argument("--dir", type=Path, help="where the pages are kept between runs (default: a temporary folder)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="--dsocr-workers for the probe (0: one per core)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 2 000 / 20 000-row peak memory runs")
    parser.add_argument("--crossover", action="store_true", help="also time small passes in this process and on workers")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _peak_rss_child(args.rss_child, args.workers)
        return 0

    from dsocr_probe.inputs import filepass

    cores = filepass.available_cores()
    workers = filepass.worker_count(args.workers)
    with tempfile.TemporaryDirectory() as scratch:
        base = args.dir or Path(scratch)
        start = time.perf_counter()
        root = write_dataset(base / f"pages-{args.n}", args.n)
        paths = image_paths(root)
        size = sum(p.stat().st_size for p in paths)
        print(f"pages: {len(paths)} ({size / 2**20:.0f} MiB, {sum(p.suffix == '.png' for p in paths)} PNG), "
              f"ready in {time.perf_counter() - start:.1f} s; {cores} core(s), probe workers: {workers}")
        floor_pass(paths, cores)  # warm the page cache and the decoder for both
        floors, probes = [], []
        for round_ in range(args.rounds):
            floors.append(floor_pass(paths, cores))
            elapsed, found = probe_pass(root, args.workers)
            probes.append(elapsed)
            if found.get("dataset.bad-rows"):
                raise SystemExit(f"the generated pages were refused: {found}")
            print(f"round {round_ + 1}: floor {len(paths) / floors[-1]:.0f} images/s, probe {len(paths) / probes[-1]:.0f} images/s")
        floor_rate = len(paths) / statistics.median(floors)
        probe_rate = len(paths) / statistics.median(probes)
        headers = header_pass(root, args.workers)
        print(f"header-only sizes (ctx.image_sizes, no pixels decoded): {len(paths) / headers:.0f} images/s")
        if args.crossover:
            crossover(paths, workers)
        if not args.no_memory:
            memory(base, workers)
        print(f"floor (PIL Image.open().load(), Pool({cores})): {floor_rate:.0f} images/s (median of {args.rounds})")
        print(f"dataset probe (decode, checks, verdicts; {workers} worker(s)): {probe_rate:.0f} images/s (median of {args.rounds})")
        print(f"ratio to the decode floor: {probe_rate / floor_rate:.2f}x")
    return 0


def memory(base: Path, workers: int) -> None:
    peaks = {}
    for n in (2_000, 20_000):
        root = write_dataset(base / f"tiny-{n}", n, make=_make_tiny)
        peaks[n] = peak_rss(root, max(workers, 2))
        if peaks[n]["codes"].get("dataset.bad-rows"):
            raise SystemExit(f"the generated pages were refused: {peaks[n]['codes']}")
        worker = f"{peaks[n]['worker'] / 2**20:.0f} MiB" if peaks[n]["worker"] else "not measured (no psutil)"
        print(f"peak RSS, {n:_} rows on worker processes: this process {peaks[n]['parent'] / 2**20:.0f} MiB, "
              f"largest worker {worker} ({peaks[n]['s']:.1f} s)".replace("_", " "))
    per_row = (peaks[20_000]["parent"] - peaks[2_000]["parent"]) / 18_000
    print(f"memory per extra row: {per_row / 1024:.2f} KiB in this process (rows, paths, verdicts, findings), "
          f"workers x{peaks[20_000]['worker'] / max(peaks[2_000]['worker'], 1):.2f} from 2 000 to 20 000 rows")


def crossover(paths: list[Path], workers: int) -> None:
    """Small passes in this process vs on workers (the pool's start included): where workers start to pay."""
    from dsocr_probe.inputs import filepass, images

    for n in (10, 25, 50, 100, 200, 400):
        if n > len(paths):
            break
        times = {}
        for label, kw in (("here", {"workers": 1}), ("workers", {"workers": workers, "decide_after_s": 0, "pool_pays_s": 0})):
            start = time.perf_counter()
            for _ in filepass.run(images.inspect_image, paths[:n], **kw):
                pass
            times[label] = time.perf_counter() - start
        print(f"crossover, {n} pages: in this process {times['here']:.2f} s, on {workers} workers {times['workers']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())

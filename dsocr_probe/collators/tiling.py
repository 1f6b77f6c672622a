"""The crop-grid rule both DeepSeek-OCR generations share (v1's remote code, OCR-2's image processor)."""

from __future__ import annotations


def closest_grid(width: int, height: int, tile: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """``(cols, rows)``: among the grids with ``min_tiles <= cols * rows <= max_tiles``, the one
    whose ``cols / rows`` is closest to ``width / height``.

    Grids are tried from fewer tiles to more (fewer columns first among equals); on an exact
    tie the later grid wins only while the page has more than half the pixels its tiles hold.
    """
    grids = sorted(
        ((cols, rows) for cols in range(1, max_tiles + 1) for rows in range(1, max_tiles + 1)
         if min_tiles <= cols * rows <= max_tiles),
        key=lambda grid: (grid[0] * grid[1], grid),
    )
    aspect, area = width / height, width * height
    best, best_gap = (1, 1), float("inf")
    for cols, rows in grids:
        gap = abs(aspect - cols / rows)
        if gap < best_gap:
            best, best_gap = (cols, rows), gap
        elif gap == best_gap and area > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best

"""Labelled image grids (the X/Y/Z plot's pictures): column headers on top, row headers on the left.

Drawn with Pillow's bundled scalable font, so the grid looks the same on every machine.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
EMPTY_CELL = (225, 225, 225)  # a cell not drawn (the run was stopped)
MIN_CELL = 128  # smaller cells (the 64 px debug model) are enlarged so the labels stay readable
GAP = 4  # pixels between cells


def font_for(cell_width: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, min(28, cell_width // 12)))


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels; a single over-long word is cut with an ellipsis."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    out = []
    for text_line in lines[:4]:  # at most 4 lines per header
        while draw.textlength(text_line, font=font) > width and len(text_line) > 2:
            text_line = text_line[:-2] + "…"
        out.append(text_line)
    return out or [""]


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int(bottom - top) + 4


def draw_grid(
    cells: list[list[Image.Image | None]],
    x_labels: list[str],
    y_labels: list[str],
    title: str = "",
    captions: list[list[str]] | None = None,
) -> Image.Image:
    """cells[row][col] -> one labelled picture. Empty labels lists mean no header on that side;
    `captions[row][col]` (a measured value such as a CLIP score) is written under each cell."""
    first = next((c for row in cells for c in row if c is not None), None)
    size = first.size if first is not None else (MIN_CELL, MIN_CELL)
    scale = max(1, -(-MIN_CELL // max(1, min(size))))  # ceil(MIN_CELL / side), nearest enlargement
    cw, ch = size[0] * scale, size[1] * scale
    font = font_for(cw)
    lh = _line_height(font)
    col_lines = [wrap(label, font, cw) for label in x_labels] if x_labels else []
    header_h = (max(len(lines) for lines in col_lines) * lh + 8) if col_lines else 0
    row_w = max(cw, 160) if y_labels else 0  # row headers get at least one cell's width
    row_lines = [wrap(label, font, row_w - 8) for label in y_labels] if y_labels else []
    title_h = (len(wrap(title, font, 10_000)) * lh + 8) if title else 0
    n_rows, n_cols = len(cells), max(len(row) for row in cells)
    width = row_w + n_cols * (cw + GAP) + GAP
    cap_h = lh if captions else 0  # one caption line under every cell
    row_h = ch + cap_h + GAP
    height = title_h + header_h + n_rows * row_h + GAP
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((GAP + 4, 4), title, fill=INK, font=font)
    # 1. column headers, centred above each column
    for c, lines in enumerate(col_lines):
        for k, line in enumerate(lines):
            x0 = row_w + GAP + c * (cw + GAP) + (cw - draw.textlength(line, font=font)) / 2
            draw.text((x0, title_h + 4 + k * lh), line, fill=INK, font=font)
    # 2. rows: header on the left (vertically centred), then the cells
    for r, row in enumerate(cells):
        top = title_h + header_h + GAP + r * row_h
        if row_lines:
            lines = row_lines[r]
            y0 = top + (ch - len(lines) * lh) / 2
            for k, line in enumerate(lines):
                x0 = row_w - 4 - draw.textlength(line, font=font)
                draw.text((x0, y0 + k * lh), line, fill=INK, font=font)
        for c in range(n_cols):
            image = row[c] if c < len(row) else None
            left = row_w + GAP + c * (cw + GAP)
            if image is None:
                draw.rectangle((left, top, left + cw - 1, top + ch - 1), fill=EMPTY_CELL)
                continue
            resample = Image.NEAREST if image.size[0] * scale == cw else Image.LANCZOS
            grid.paste(image.convert("RGB").resize((cw, ch), resample), (left, top))
            caption = captions[r][c] if captions and c < len(captions[r]) else ""
            if caption:
                text = wrap(caption, font, cw)[0]
                x0 = left + (cw - draw.textlength(text, font=font)) / 2
                draw.text((x0, top + ch + 1), text, fill=INK, font=font)
    return grid


def stack_grids(grids: list[Image.Image], gap: int = 16) -> Image.Image:
    """Several grids (one per Z value, each titled) stacked top to bottom on one canvas."""
    if len(grids) == 1:
        return grids[0]
    width = max(g.width for g in grids)
    height = sum(g.height for g in grids) + gap * (len(grids) - 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    y = 0
    for g in grids:
        canvas.paste(g, (0, y))
        y += g.height + gap
    return canvas

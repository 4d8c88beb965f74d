"""In-domain images for the corpus's OCR and document models: rendered text, not photographs.

Most of the corpus's vision models read text: text detectors, line recognizers, line and page
orientation classifiers, a layout detector, captcha readers. A photograph holds no text line, so
on photographs their outputs are near-zero maps and near-ties, and calibration sees activation
ranges the model never meets in use. A user calibrates an OCR model on pages and lines; this module
renders those with Pillow, so the benchmarks can calibrate and judge each model on what it reads.

Four scenes, chosen per corpus model (CorpusModel.content):
- `page`: a document page (title, paragraphs, sometimes a table or a photograph as figure), at a
  random multiple of 90 degrees where the model classifies orientation (`page-rotated`);
- `textline`: one line of text filling the height, on paper or on a photograph, turned 180 degrees
  half the time (`textline-flipped`, for the 0/180 line classifiers);
- `captcha`: 4-6 jittered, rotated characters with noise lines and dots (small inputs), or a few
  large characters scattered over a photograph (click captchas, large inputs).

Text is random pseudo-words (letters, digits, punctuation) in the TrueType fonts the machine has
(DejaVu, Liberation), else Pillow's built-in font, so figures can differ slightly between machines
with other fonts. Latin script only: the Chinese PP-OCR models also read Latin text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from natural_images import photo_crop

SCENES = ("page", "page-rotated", "textline", "textline-flipped", "captcha")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
LETTERS = "abcdefghijklmnopqrstuvwxyzabcdeeeeiiooaarrnnsstt"
CAPTCHA_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghkmnpqrstuvwxyz23456789"


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """The machine's TrueType fonts from FONT_DIRS (plain, bold, serif, mono...), sorted; may be empty."""
    found = []
    for folder in FONT_DIRS:
        found += [str(p) for p in Path(folder).glob("*.ttf") if "Math" not in p.name]
    return tuple(sorted(found))


def _font(rng, size: int):
    from PIL import ImageFont

    size = max(6, int(size))
    files = font_files()
    if not files:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(files[rng.integers(len(files))], size)


def _word(rng) -> str:
    kind = rng.random()
    if kind < 0.12:
        return str(rng.integers(0, 10 ** rng.integers(1, 6)))
    word = "".join(LETTERS[i] for i in rng.integers(len(LETTERS), size=rng.integers(1, 11)))
    if kind < 0.3:
        word = word.capitalize()
    elif kind < 0.35:
        word = word.upper()
    if rng.random() < 0.1:
        word += ",.:;!?"[rng.integers(6)]
    return word


def _words(rng, font, width: int) -> str:
    """Words until the text is about `width` pixels wide in `font`."""
    text = _word(rng)
    while True:
        longer = text + " " + _word(rng)
        if font.getlength(longer) > width:
            return text
        text = longer


def _ink(rng, background) -> tuple:
    """A text colour that contrasts with the background: dark on light, light on dark."""
    light = sum(background) / 3 > 127
    base = rng.integers(0, 90, size=3) if light else rng.integers(170, 256, size=3)
    return tuple(int(c) for c in base)


def _paper(rng) -> tuple:
    return tuple(int(c) for c in rng.integers(215, 256, size=3))


def _page(rng, photos, width: int, height: int):
    from PIL import Image, ImageDraw

    paper = _paper(rng)
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    margin = int(min(width, height) * rng.uniform(0.03, 0.1))
    body = max(8, int(height * rng.uniform(0.018, 0.045)))
    y = margin
    while y < height - margin - body:
        block = rng.random()
        left, right = margin, width - margin
        if rng.random() < 0.3:  # two columns
            half = (right - left) // 2
            left, right = (left, left + half - margin // 2) if rng.random() < 0.5 else (left + half, right)
        if block < 0.15:  # heading
            font = _font(rng, body * rng.uniform(1.4, 2.4))
            draw.text(
                (left, y),
                _words(rng, font, int((right - left) * rng.uniform(0.3, 0.9))),
                fill=_ink(rng, paper),
                font=font,
            )
            y += int(font.size * 1.6)
        elif block < 0.25 and photos:  # figure
            fh = int(min(height - margin - y, (right - left) * rng.uniform(0.3, 0.7)))
            if fh > 16:
                img.paste(photo_crop(rng, photos, right - left, fh), (left, y))
                y += fh + body
        elif block < 0.35:  # table
            rows, cols = int(rng.integers(2, 7)), int(rng.integers(2, 6))
            cell_h, cell_w = int(body * 1.8), (right - left) // cols
            font = _font(rng, body * 0.9)
            ink = _ink(rng, paper)
            for r in range(rows + 1):
                draw.line((left, y + r * cell_h, left + cols * cell_w, y + r * cell_h), fill=ink)
            for c in range(cols + 1):
                draw.line((left + c * cell_w, y, left + c * cell_w, y + rows * cell_h), fill=ink)
            for r in range(rows):
                for c in range(cols):
                    text = _words(rng, font, int(cell_w * rng.uniform(0.2, 0.8)))
                    draw.text((left + c * cell_w + 3, y + r * cell_h + 2), text, fill=ink, font=font)
            y += rows * cell_h + body
        else:  # paragraph
            font = _font(rng, body)
            ink = _ink(rng, paper)
            for _ in range(int(rng.integers(2, 9))):
                if y > height - margin - body:
                    break
                width_px = (
                    (right - left) if rng.random() < 0.8 else int((right - left) * rng.uniform(0.2, 0.9))
                )
                draw.text((left, y), _words(rng, font, width_px), fill=ink, font=font)
                y += int(body * rng.uniform(1.2, 1.6))
            y += body
    return img


def _textline(rng, photos, width: int, height: int):
    from PIL import Image, ImageDraw

    on_photo = photos and rng.random() < 0.3
    img = (
        photo_crop(rng, photos, width, height) if on_photo else Image.new("RGB", (width, height), _paper(rng))
    )
    background = tuple(int(c) for c in img.resize((1, 1)).getpixel((0, 0)))
    font = _font(rng, height * rng.uniform(0.55, 0.85))
    x = int(rng.integers(0, max(1, width // 20)))
    text = _words(rng, font, int((width - x) * rng.uniform(0.5, 1.0)))
    top = font.getbbox(text)[1]
    y = int((height - font.size) / 2 - top / 2 + rng.integers(-height // 10, height // 10 + 1))
    ImageDraw.Draw(img).text((x, y), text, fill=_ink(rng, background), font=font)
    return img


def _captcha(rng, photos, width: int, height: int):
    from PIL import Image, ImageDraw

    if min(width, height) >= 200 and photos:  # a click captcha: large characters over a photograph
        img, count, size = (
            photo_crop(rng, photos, width, height),
            int(rng.integers(3, 6)),
            height * rng.uniform(0.08, 0.16),
        )
    else:
        img = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(180, 256, size=3)))
        count, size = int(rng.integers(4, 7)), height * rng.uniform(0.6, 0.85)
    step = width / (count + 1)
    for i in range(count):
        font = _font(rng, size)
        char = CAPTCHA_CHARS[rng.integers(len(CAPTCHA_CHARS))]
        glyph = Image.new("RGBA", (int(size * 1.6), int(size * 1.6)), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text(
            (size * 0.3, size * 0.1), char, font=font, fill=(*_ink(rng, (255, 255, 255)), 255)
        )
        glyph = glyph.rotate(float(rng.uniform(-35, 35)), expand=False)
        if min(width, height) >= 200:
            x, y = int(rng.integers(0, width - glyph.width)), int(rng.integers(0, height - glyph.height))
        else:
            x = int(step * (i + 0.5) + rng.integers(-int(step // 4) - 1, int(step // 4) + 1))
            y = int((height - glyph.height) / 2 + rng.integers(-height // 8, height // 8 + 1))
        img.paste(glyph, (x, y), glyph)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 5))):
        points = [tuple(int(v) for v in rng.integers(0, (width, height))) for _ in range(2)]
        draw.line(
            points, fill=tuple(int(c) for c in rng.integers(0, 200, size=3)), width=int(rng.integers(1, 3))
        )
    for _ in range(width * height // 60):
        draw.point(
            tuple(int(v) for v in rng.integers(0, (width, height))),
            fill=tuple(int(c) for c in rng.integers(0, 256, size=3)),
        )
    return img


def render(scene: str, rng, width: int, height: int, photos: list[Path]):
    """One RGB image of `scene` at width x height; photos are the pool for figures and backgrounds."""
    from PIL import Image

    quarter_turns = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    if scene == "page-rotated":
        turns = int(rng.integers(4))
        w, h = (width, height) if turns % 2 == 0 else (height, width)
        page = _page(rng, photos, w, h)
        return page.transpose(quarter_turns[turns]) if turns else page
    if scene == "page":
        return _page(rng, photos, width, height)
    if scene in ("textline", "textline-flipped"):
        img = _textline(rng, photos, width, height)
        return (
            img.transpose(Image.Transpose.ROTATE_180)
            if scene == "textline-flipped" and rng.random() < 0.5
            else img
        )
    if scene == "captcha":
        return _captcha(rng, photos, width, height)
    raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}")

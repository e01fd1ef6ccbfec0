#!/usr/bin/env python3
"""Make the sample inputs (.npy) for the models in this folder.

Requirements:
  - Python 3.9 or newer with numpy, pillow and onnxruntime
    (tested with numpy 2.4.6, pillow 13.0.0, onnxruntime 1.31.1).
    onnxruntime runs the VAD model to compute the recurrent state that
    speech_state.npy stores.
  - Debian packages: fonts-dejavu-core (DejaVuSans.ttf), espeak-ng and sox
    (`apt-get install -y fonts-dejavu-core espeak-ng sox`; tested with
    fonts-dejavu-core 2.37, espeak-ng 1.51 and SoX 14.4.2).
  - The models, placed by `models/fetch.sh`.

Usage: python models/make_inputs.py   (from any directory)

All arrays are float32. The script overwrites the existing files. Run
models/verify.py afterwards to recompute models/expected.json.
"""

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MODELS_DIR = Path(__file__).resolve().parent
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# Text-direction classifier: input shape [3, 48, 192] (cls_image_shape in the
# config.yaml of rapidocr-onnxruntime 1.4.4).
CLS_HEIGHT = 48
CLS_MAX_WIDTH = 192
CLS_TEXT = "inferwatch 2026"
CLS_FONT_SIZE = 40

# Text detector: the input height and width must be multiples of 32.
DET_SIZE = 320
DET_LINES = [
    # (text, font size in pixels, top-left corner of the drawn text)
    ("inferwatch", 36, (24, 40)),
    ("ONNX inference", 28, (24, 130)),
    ("text detection 2026", 24, (24, 220)),
]
# PaddleOCR's det configs for PP-OCRv4 normalize the BGR image with the
# ImageNet mean and std, in this order, after scaling to [0, 1].
DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Silero VAD at 16 kHz: each call takes 64 samples of context (the end of
# the previous chunk) followed by 512 new samples.
VAD_RATE = 16000
VAD_CHUNK = 512
VAD_CONTEXT = 64
VAD_TEXT = "The quick brown fox jumps over the lazy dog."
VAD_LEADING_SILENCE_CHUNKS = 16  # 0.512 s
VAD_TRAILING_SILENCE_CHUNKS = 16


def save(path: Path, array: np.ndarray) -> None:
    if array.dtype != np.float32:
        raise TypeError(f"{path}: expected float32, got {array.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # C order, so that every file's header has fortran_order False.
    np.save(path, np.ascontiguousarray(array))
    print(f"wrote {path.relative_to(MODELS_DIR)} shape={list(array.shape)}")


def load_font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT_PATH.exists():
        sys.exit(
            f"font not found: {FONT_PATH}. "
            "Install it with `apt-get install -y fonts-dejavu-core`."
        )
    return ImageFont.truetype(str(FONT_PATH), size)


def rgb_to_bgr_array(image: Image.Image) -> np.ndarray:
    """Return an HWC uint8 array in BGR order, as OpenCV's imread gives it."""
    return np.asarray(image.convert("RGB"))[:, :, ::-1]


# ---------------------------------------------------------------- classifier


def render_text_line(text: str, font_size: int, margin: int = 6) -> Image.Image:
    """Render black text on white, cropped to the ink box plus a margin."""
    font = load_font(font_size)
    left, top, right, bottom = font.getbbox(text)
    width = right - left + 2 * margin
    height = bottom - top + 2 * margin
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill="black")
    return image


def preprocess_cls(image: Image.Image) -> np.ndarray:
    """Resize to height 48 keeping the aspect ratio (width at most 192),
    scale to [-1, 1] and pad on the right with zeros to width 192.

    Follows TextClassifier.resize_norm_img in rapidocr-onnxruntime 1.4.4,
    except that it resizes with Pillow's bilinear filter instead of cv2.resize.
    """
    width, height = image.size
    resized_width = min(CLS_MAX_WIDTH, math.ceil(CLS_HEIGHT * width / height))
    resized = image.resize((resized_width, CLS_HEIGHT), Image.Resampling.BILINEAR)
    chw = rgb_to_bgr_array(resized).astype(np.float32).transpose(2, 0, 1)
    chw = (chw / 255.0 - 0.5) / 0.5
    padded = np.zeros((3, CLS_HEIGHT, CLS_MAX_WIDTH), dtype=np.float32)
    padded[:, :, :resized_width] = chw
    return padded[np.newaxis]


def make_cls_inputs() -> None:
    folder = MODELS_DIR / "ppocr-cls"
    upright = render_text_line(CLS_TEXT, CLS_FONT_SIZE)
    upside_down = upright.transpose(Image.Transpose.ROTATE_180)
    save(folder / "x.npy", preprocess_cls(upright))
    save(folder / "x_upside_down.npy", preprocess_cls(upside_down))


# ------------------------------------------------------------------ detector


def render_text_block() -> tuple[Image.Image, list[dict]]:
    """Render DET_LINES on a white square and return the ink box of each line."""
    image = Image.new("RGB", (DET_SIZE, DET_SIZE), "white")
    draw = ImageDraw.Draw(image)
    boxes = []
    for text, size, origin in DET_LINES:
        font = load_font(size)
        draw.text(origin, text, font=font, fill="black")
        left, top, right, bottom = draw.textbbox(origin, text, font=font)
        if left < 0 or top < 0 or right > DET_SIZE or bottom > DET_SIZE:
            raise ValueError(f"line {text!r} does not fit in {DET_SIZE}x{DET_SIZE}")
        boxes.append({"text": text, "box": [left, top, right, bottom]})
    return image, boxes


def preprocess_det(image: Image.Image) -> np.ndarray:
    """Normalize a BGR image with the ImageNet mean and std and return NCHW.

    The image is already DET_SIZE x DET_SIZE, so the resize step of
    RapidOCR and PaddleOCR (to a multiple of 32) is left out.
    """
    bgr = rgb_to_bgr_array(image).astype(np.float32) / 255.0
    normalized = (bgr - DET_MEAN) / DET_STD
    return normalized.transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def make_det_inputs() -> None:
    folder = MODELS_DIR / "ppocr-det"
    image, boxes = render_text_block()
    save(folder / "x.npy", preprocess_det(image))
    description = {
        "image_size": [DET_SIZE, DET_SIZE],
        "box_format": "[x0, y0, x1, y1] in pixels of the model input, x1 and y1 exclusive",
        "lines": boxes,
    }
    path = folder / "text_boxes.json"
    path.write_text(json.dumps(description, indent=2) + "\n")
    print(f"wrote {path.relative_to(MODELS_DIR)}")


# ----------------------------------------------------------------------- VAD


def run_tool(args: list[str]) -> None:
    try:
        subprocess.run(args, check=True)
    except FileNotFoundError:
        sys.exit(f"{args[0]} not found. Install it with `apt-get install -y {args[0]}`.")


def speak_16k(text: str) -> np.ndarray:
    """Synthesize text with espeak-ng and return 16 kHz mono samples in [-1, 1]."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        raw = Path(tmp) / "speech_16k.f32"
        run_tool(["espeak-ng", "-v", "en-us", "-w", str(wav), text])
        # Float output keeps the resampled values unquantized. With 16-bit
        # output, sox adds random dither and the result differs on every run.
        run_tool(["sox", str(wav), "-t", "raw", "-r", str(VAD_RATE), "-c", "1",
                  "-e", "floating-point", "-b", "32", "-L", str(raw)])
        return np.fromfile(raw, dtype="<f4").astype(np.float32)


def vad_chunk_input(audio: np.ndarray, index: int) -> np.ndarray:
    """Return the [1, 576] input for chunk `index`: the 64 samples before the
    chunk (zeros for the first chunk) followed by the chunk's 512 samples."""
    start = index * VAD_CHUNK
    context = audio[start - VAD_CONTEXT : start] if index > 0 else np.zeros(VAD_CONTEXT, np.float32)
    return np.concatenate([context, audio[start : start + VAD_CHUNK]])[np.newaxis].astype(np.float32)


def vad_state_before(audio: np.ndarray, index: int) -> np.ndarray:
    """Run the VAD over chunks 0 to index - 1, starting from a zero state, and
    return the state that goes into chunk `index`."""
    import onnxruntime

    model_path = MODELS_DIR / "silero-vad" / "model.onnx"
    if not model_path.exists():
        sys.exit(f"model not found: {model_path}. Run models/fetch.sh first.")
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    for i in range(index):
        _, state = session.run(None, {"input": vad_chunk_input(audio, i), "state": state})
    return state.astype(np.float32)


def make_vad_inputs() -> None:
    folder = MODELS_DIR / "silero-vad"
    speech = speak_16k(VAD_TEXT)
    trailing = VAD_TRAILING_SILENCE_CHUNKS * VAD_CHUNK + (-len(speech)) % VAD_CHUNK
    audio = np.concatenate(
        [
            np.zeros(VAD_LEADING_SILENCE_CHUNKS * VAD_CHUNK, np.float32),
            speech,
            np.zeros(trailing, np.float32),
        ]
    )
    assert len(audio) % VAD_CHUNK == 0
    save(folder / "speech_16k.npy", audio)

    # The chunk in the middle of the utterance.
    middle = (VAD_LEADING_SILENCE_CHUNKS * VAD_CHUNK + len(speech) // 2) // VAD_CHUNK
    save(folder / "speech.npy", vad_chunk_input(audio, middle))
    save(folder / "speech_state.npy", vad_state_before(audio, middle))
    save(folder / "silence.npy", np.zeros((1, VAD_CONTEXT + VAD_CHUNK), np.float32))
    save(folder / "state.npy", np.zeros((2, 1, 128), np.float32))
    info = {
        "sample_rate": VAD_RATE,
        "chunk": VAD_CHUNK,
        "context": VAD_CONTEXT,
        "text": VAD_TEXT,
        "speech_samples": [VAD_LEADING_SILENCE_CHUNKS * VAD_CHUNK,
                           VAD_LEADING_SILENCE_CHUNKS * VAD_CHUNK + len(speech)],
        "speech_chunk_index": middle,
    }
    path = folder / "speech_16k.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {path.relative_to(MODELS_DIR)}")

    # The sequence model takes the chunk inputs of the whole stream as the rows
    # of one input.
    frames = np.concatenate([vad_chunk_input(audio, i) for i in range(len(audio) // VAD_CHUNK)])
    sequence_folder = MODELS_DIR / "silero-vad-sequence"
    save(sequence_folder / "input.npy", frames)
    save(sequence_folder / "h.npy", np.zeros((1, 1, 128), np.float32))
    save(sequence_folder / "c.npy", np.zeros((1, 1, 128), np.float32))


def main() -> None:
    make_cls_inputs()
    make_det_inputs()
    make_vad_inputs()


if __name__ == "__main__":
    main()

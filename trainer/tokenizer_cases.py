"""Reference token ids for the engine's text tokenizer (tests/native/janus.rs): Hugging Face `tokenizers`
(the Python package, the field's own implementation) on a tokenizer.json, `encode(text,
add_special_tokens=False)` for texts that exercise its pre-tokenizer (English, Chinese, Japanese, digits,
emoji, runs of spaces and newlines, special tokens written in the text), and the Janus prompt template with
BOS first as the reference's `tokenizer.encode(prompt)` gives it.

    python trainer/tokenizer_cases.py tests/fixtures/deepseek-tokenizer/tokenizer.json \
        > tests/fixtures/deepseek-tokenizer/cases.json
"""

import hashlib
import json
import sys

import tokenizers

TEXTS = [
    "A close-up of a cat wearing a detective hat, photorealistic, 4k",
    "一只戴着侦探帽的猫，特写，照片级真实感",
    "探偵の帽子をかぶった猫のクローズアップ、写実的",
    "3.14159 and 1234567890 and ４５６",
    "emoji: 🐱🎩🔍 and 👩‍👩‍👧 (a family)",
    "runs   of    spaces\n\nand\n\n\nnewlines\t\ttabs  ",
    "  leading and trailing spaces  ",
    "<|User|>: special tokens <begin_of_image> in the text",
    "Ünïcödé àccents, ß, Ωμέγα, Кириллица, العربية",
    "",
]

TEMPLATE_PROMPT = "a menu board in a cafe, chalk lettering"


def main(path: str) -> None:
    raw = open(path, "rb").read()
    tok = tokenizers.Tokenizer.from_str(raw.decode("utf-8"))
    bos = tok.token_to_id("<｜begin▁of▁sentence｜>")
    template = f"<|User|>: {TEMPLATE_PROMPT}\n\n<|Assistant|>:<begin_of_image>"
    out = {
        "made_with": f"tokenizers {tokenizers.__version__} (Python), trainer/tokenizer_cases.py",
        "tokenizer_sha256": hashlib.sha256(raw).hexdigest(),
        "cases": [
            {"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS
        ],
        "template": {
            "prompt": TEMPLATE_PROMPT,
            "ids": [bos] + tok.encode(template, add_special_tokens=False).ids,
        },
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])

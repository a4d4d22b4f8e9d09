"""Hugging Face image-to-text models as captioners, driven by family.

`--captioner transformers:<hub id or model directory>[?prompt=<words>]`. The family is
read from the model's config (`model_type`) before anything heavy loads, and decides
how it is driven:

- captioning models, which describe an image from nothing: BLIP
  (BlipForConditionalGeneration), GIT (GitForCausalLM) and VisionEncoderDecoder
  (ViT-GPT2 and kin). The image processor's pixels go to `generate`; the tokenizer
  decodes what it returns.
- chat models, which answer a request about the image: LLaVA and Idefics3 (SmolVLM). The
  request (`prompt`, DEFAULT_PROMPT unless given) and the image go through the
  processor's chat template, one image at a time (no padding to get wrong), the whole
  image as one tile (WHOLE_IMAGE_ONLY); only the tokens after the request are the
  caption.

The prompt is part of the spec, not a setting of its own: it changes what the captions
say, and the spec is the captioner's name, recorded in the catalog beside every caption,
so captions written with another prompt are known as another captioner's. A spec works
wherever a captioner is named (`--captioner`, `-o captioner=`, config.toml); write a
space in the prompt as `+` or `%20`.

Models whose config names their own Python code (`auto_map`, run only with
trust_remote_code, e.g. Microsoft's Florence-2) and families not listed here are refused
with a ModelError naming those that are supported: semfs runs no code from the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, quote

from PIL import Image

from semfs.errors import ModelError

MAX_NEW_TOKENS = 30
DEFAULT_PROMPT = "Describe this photo in one sentence."

# model_type -> the family's name as users know it.
CAPTIONING_FAMILIES = {
    "blip": "BLIP",
    "git": "GIT",
    "vision-encoder-decoder": "VisionEncoderDecoder (ViT-GPT2, ...)",
}
# Idefics3 is SmolVLM's architecture (256M, 500M, 2.2B). SmolVLM2 (model_type smolvlm)
# is not here: its processor loads a video processor that needs torchvision.
CHAT_FAMILIES = {"llava": "LLaVA", "idefics3": "Idefics3 (SmolVLM)"}
# Chat families that cut a photo into tiles (SmolVLM at 512 px: a 4:3 photo, resized to
# 2048 px, is 4 x 3 tiles and the whole, 13 x 64 image tokens). One sentence needs the
# whole image alone: 1/13 of the vision encoder's work and of the image tokens.
WHOLE_IMAGE_ONLY = {"idefics3": {"do_image_splitting": False}}
SUPPORTED = ", ".join([*CAPTIONING_FAMILIES.values(), *CHAT_FAMILIES.values()])


def parse_transformers_spec(argument: str) -> tuple[str, str | None]:
    """`<model>[?prompt=<words>]` -> (model, prompt or None); ModelError if malformed."""
    model, _, query = argument.partition("?")
    if not model:
        raise ModelError("--captioner transformers:<hub id or model directory>[?prompt=...]")
    options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    unknown = set(options) - {"prompt"}
    if unknown:
        raise ModelError(f"unknown transformers captioner options {sorted(unknown)}; known: prompt")
    prompts = options.get("prompt", [])
    if len(prompts) > 1 or (prompts and not prompts[0].strip()):
        raise ModelError("give one non-empty prompt: transformers:<model>?prompt=<words>")
    return model, prompts[0] if prompts else None


def model_family(model: str) -> str:
    """The model's `model_type`, read from its config alone; ModelError for a model
    that cannot be read, needs its own code, or is of a family not supported."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(model)
    except (OSError, ValueError) as error:
        raise _unloadable(model, error) from error
    family = str(config.get("model_type", ""))
    if config.get("auto_map"):
        raise ModelError(
            f"captioning model {model!r} ({family or 'no model_type'}) needs "
            f"trust_remote_code: its own Python code from the hub, which semfs does not run. "
            f"Use a conversion transformers supports natively; supported families: {SUPPORTED}"
        )
    if family not in CAPTIONING_FAMILIES and family not in CHAT_FAMILIES:
        raise ModelError(
            f"captioning model {model!r} is of family {family or '(no model_type)'!r}, which "
            f"semfs cannot drive; supported families: {SUPPORTED}"
        )
    return family


def _unloadable(model: str, error: Exception) -> ModelError:
    return ModelError(
        f"cannot load captioning model {model!r}: {error}. Give a hub id (needs the "
        f"model hub, or a filled cache) or a directory saved with save_pretrained()"
    )


class TransformersCaptioner:
    def __init__(self, model: str, prompt: str | None = None) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        self._torch = torch
        self.family = model_family(model)
        self.chat = self.family in CHAT_FAMILIES
        if prompt is not None and not self.chat:
            raise ModelError(
                f"{CAPTIONING_FAMILIES[self.family]} captions without a prompt; prompts are "
                f"for chat models ({', '.join(CHAT_FAMILIES.values())})"
            )
        self.prompt = prompt or DEFAULT_PROMPT
        try:
            self._processor, self._tokenizer = self._load_processing(model)
            loaded = AutoModelForImageTextToText.from_pretrained(model)
            self._model = loaded.eval()  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError, ImportError) as error:
            raise _unloadable(model, error) from error
        if self.chat and not getattr(self._processor, "chat_template", None):
            raise ModelError(f"chat model {model!r} has no chat template in its processor")
        self.name = f"transformers:{model}" + (f"?prompt={quote(prompt)}" if prompt else "")

    def _load_processing(self, model: str) -> tuple[Any, Any]:
        from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

        if self.chat:  # the processor puts the image's tokens into the chat
            processor = AutoProcessor.from_pretrained(model)  # type: ignore[no-untyped-call,unused-ignore]
            return processor, processor.tokenizer
        # Separate parts rather than AutoProcessor: ViT-GPT2-style models ship no
        # combined processor, while BLIP/GIT ship both parts as well.
        images = AutoImageProcessor.from_pretrained(model)  # type: ignore[no-untyped-call,unused-ignore]
        return images, AutoTokenizer.from_pretrained(model)

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        if self.chat:
            return [self._answer(image) for image in images]
        pixels = self._processor(images=list(images), return_tensors="pt")["pixel_values"]
        with self._torch.inference_mode():
            tokens = self._model.generate(
                pixel_values=pixels, max_new_tokens=MAX_NEW_TOKENS, do_sample=False
            )
        texts = self._tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [_clean(text) for text in texts]

    def _answer(self, image: Image.Image) -> str:
        request = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}
        ]
        text = self._processor.apply_chat_template(request, add_generation_prompt=True)
        options = WHOLE_IMAGE_ONLY.get(self.family, {})
        inputs = self._processor(text=[text], images=[[image]], return_tensors="pt", **options)
        with self._torch.inference_mode():
            tokens = self._model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        answer = tokens[:, inputs["input_ids"].shape[1] :]
        return _clean(self._tokenizer.batch_decode(answer, skip_special_tokens=True)[0])


def _clean(text: str) -> str:
    return " ".join(text.split())

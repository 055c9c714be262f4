"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), small valid inputs made
with the reference packages of .venv (gguf, safetensors, tokenizers, transformers) and the test
fixtures. Run from the repository root: `.venv/bin/python fuzz/seeds.py`. Fields of a
multi-field input are joined by 0xFF, as medgen::fuzz splits them."""

import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CLINICAL_SENTENCES, DEFAULT_DIR, DEFAULT_FILE  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
SEP = b"\xff"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def joined(*fields):
    return SEP.join(f.encode() if isinstance(f, str) else f for f in fields)


# Gemma's chat template, text only (the Gemma 3 GGUF of the tests has none).
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def chat_templates():
    """SmolLM2's chat template, from its GGUF file, and Gemma's."""
    from gguf import GGUFReader

    field = GGUFReader(Path(DEFAULT_DIR) / DEFAULT_FILE).fields["tokenizer.chat_template"]
    return {"smollm2": bytes(field.parts[field.data[0]]).decode(), "gemma": GEMMA_TEMPLATE}


def gguf_seeds(templates):
    import gguf
    import sentencepiece as spm
    from gguf import GGMLQuantizationType as T
    from tokenizers.pre_tokenizers import ByteLevel

    def header(w, arch, vocab):
        w.add_context_length(64)
        w.add_embedding_length(8)
        w.add_block_count(1)
        w.add_feed_forward_length(32)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        # The embedding gives the vocabulary size; a quantized tensor its block layout.
        w.add_tensor("token_embd.weight", np.zeros((vocab, 8), dtype=np.float16))
        w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
        ffn = np.linspace(-1, 1, 2 * 32, dtype=np.float32).reshape(2, 32)
        w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(ffn, T.Q8_0), raw_dtype=T.Q8_0)

    def writer(name, arch):
        path = CORPUS / "gguf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return gguf.GGUFWriter(str(path), arch)

    def save(w):
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    # GPT-2 byte-level BPE (SmolLM2's kind): the byte alphabet, a few merges, control tokens.
    alphabet = sorted(ByteLevel.alphabet())
    merges = ["Ġ p", "a t", "i e", "Ġp at", "ie n", "Ġpat ien", "Ġpatien t"]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + alphabet + [m.replace(" ", "") for m in merges]
    for name, arch, pre in [("gpt2_smollm.gguf", "llama", "smollm"), ("gpt2_qwen2.gguf", "qwen2", "qwen2")]:
        w = writer(name, arch)
        header(w, arch, len(tokens))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_chat_template(templates["smollm2"])
        save(w)

    # SentencePiece BPE (Llama's kind) with byte fallback; as Gemma 3 too.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CLINICAL_SENTENCES * 3), model_writer=model, model_type="bpe",
        vocab_size=400, byte_fallback=True, character_coverage=1.0, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    types = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1 for i in range(n)]
    for name, arch in [("spm_llama.gguf", "llama"), ("spm_gemma3.gguf", "gemma3")]:
        w = writer(name, arch)
        header(w, arch, n)
        if arch == "gemma3":
            w.add_sliding_window(8)
        w.add_tokenizer_model("llama")
        w.add_token_list(pieces)
        w.add_token_scores([sp.get_score(i) for i in range(n)])
        w.add_token_types(types)
        w.add_unk_token_id(0)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_add_bos_token(True)
        w.add_chat_template(templates["gemma"])
        save(w)


def safetensors_seeds():
    import torch
    from safetensors.torch import save

    write("safetensors_header", "f32_f16_bf16.safetensors", save({
        "model.embed_tokens.weight": torch.zeros(4, 3),
        "model.norm.weight": torch.ones(3, dtype=torch.float16),
        "lm_head.weight": torch.zeros(2, 3, dtype=torch.bfloat16),
    }, metadata={"format": "pt"}))
    write("safetensors_header", "ints_and_scalar.safetensors", save({
        "ids": torch.arange(3), "mask": torch.tensor([True, False]), "scale": torch.tensor(1.5),
        "empty": torch.zeros(0, 2),
    }))


def tokenizer_seeds(templates):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    text = "Patient denies chest pain. 患者男性，50岁。<|im_start|>"
    config = json.dumps({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
                         "chat_template": templates["smollm2"]})
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    # Byte-level BPE, as SmolLM2's tokenizer.json.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CLINICAL_SENTENCES, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    write("tokenizer_json", "bpe_bytelevel", joined(tok.to_str(), config, text))
    write("tokenizer_json", "bpe_bytelevel_alone", tok.to_str())

    # WordPiece with BERT's normalizer and post-processor.
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CLINICAL_SENTENCES, trainers.WordPieceTrainer(
        vocab_size=150, special_tokens=["[UNK]", "[CLS]", "[SEP]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    write("tokenizer_json", "wordpiece", joined(tok.to_str(), "{}", text))

    # Unigram with Metaspace, as T5's.
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CLINICAL_SENTENCES, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    write("tokenizer_json", "unigram", joined(tok.to_str(), json.dumps({"eos_token": "</s>"}), text))


def chat_seeds(templates):
    for name, source in templates.items():
        write("chat_template", name, joined(source, "Summarize the note.", "Patient stable.", " 患者 <|im_end|>\n"))
        write("chat_template", f"{name}_alone", source)
    write("chat_template", "loop_and_filters", joined(
        "{{ bos_token }}{% for m in messages %}{% if loop.first %}[{{ m.role | upper }}]{% endif %}"
        "{{ m.content | trim }}{{ eos_token if not loop.last }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' ~ messages | length }}{% endif %}",
        "  a  ", "b"))


def config_seeds():
    import transformers as tf

    tiny = dict(vocab_size=400, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    gemma_text = dict(tiny, head_dim=24, query_pre_attn_scalar=32, sliding_window=8)
    configs = {
        "gpt2": tf.GPT2Config(vocab_size=400, n_positions=64, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0),
        "llama": tf.LlamaConfig(**tiny, rope_theta=5000.0, tie_word_embeddings=True),
        "llama_rope_scaling": tf.LlamaConfig(**tiny, rope_scaling={"rope_type": "linear", "factor": 2.0}),
        "qwen2": tf.Qwen2Config(**tiny, tie_word_embeddings=True),
        "mistral": tf.MistralConfig(**tiny, sliding_window=None),
        "gemma3_text": tf.Gemma3TextConfig(**gemma_text, final_logit_softcapping=5.0),
        "gemma3_multimodal": tf.Gemma3Config(text_config=gemma_text, vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
            image_size=28, patch_size=14)),
        "t5": tf.T5Config(vocab_size=400, d_model=64, d_ff=96, d_kv=12, num_heads=4, num_layers=2),
        "t5_gated": tf.T5Config(vocab_size=400, d_model=64, d_ff=96, d_kv=12, num_heads=4, num_layers=2,
                                feed_forward_proj="gated-gelu"),
        "bart": tf.BartConfig(vocab_size=400, d_model=64, encoder_layers=2, decoder_layers=2,
                              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
                              decoder_ffn_dim=96, max_position_embeddings=128),
    }
    for name, cfg in configs.items():
        write("config_json", f"{name}.json", cfg.to_json_string())


def note_seeds():
    notes = sorted((ROOT / "examples/notes").glob("*.txt")) + sorted((ROOT / "tests/data/deid").glob("*.txt"))
    for p in notes:
        write("deid", p.name, p.read_bytes())
    cases = json.loads((ROOT / "tests/data/checks/cases.json").read_text())
    for c in cases:
        write("checks", c["id"], joined(c["source"], c["output"]))
        write("metrics", c["id"], joined(c["output"], c["source"]))
    write("metrics", "lines", joined("The patient is stable .\nNo fever.\n", "The patient is stable.\nAfebrile.\n"))


def batch_seeds():
    lines = [
        '"Impression:"',
        '{"prompt": "Discharge summary for a 67-year-old woman:"}',
        "[1, 2, 3]",
        '{"messages": [{"role": "system", "content": "You are a clinician."}, {"role": "user", "content": "患者"}]}',
    ]
    write("batch_file", "all_kinds.jsonl", "\n".join(lines) + "\n\n")
    for i, line in enumerate(lines):
        write("batch_file", f"line{i}.jsonl", line)


if __name__ == "__main__":
    templates = chat_templates()
    gguf_seeds(templates)
    safetensors_seeds()
    tokenizer_seeds(templates)
    chat_seeds(templates)
    config_seeds()
    note_seeds()
    batch_seeds()

